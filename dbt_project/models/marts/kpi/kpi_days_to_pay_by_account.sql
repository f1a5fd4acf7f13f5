{#- Days from invoice to payment per month of payment, account and currency. Formula, grain
    and caveats: _kpi__models.yml. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

payments as (

    select * from {{ ref('fct_payments') }}

),

allocations as (

    select * from {{ ref('fct_payment_allocations') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

{#- One row per cash amount applied to an invoice; credit notes settle but are not paid. -#}
paid_invoices as (

    select
        invoices.account_key,
        allocations.currency,
        allocations.amount,
        coalesce(payments.payment_date, allocations.allocation_date) as paid_on,
        invoices.issue_date

    from allocations

    inner join invoices
        on allocations.invoice_key = invoices.invoice_key

    left join payments
        on allocations.payment_key = payments.payment_key

    where allocations.allocation_type = 'payment'
        and invoices.issue_date is not null

),

measured as (

    select
        cast({{ dbt.date_trunc('month', 'paid_on') }} as date) as payment_month,
        account_key,
        currency,
        amount,
        {{ q2c_days_between('issue_date', 'paid_on') }} as days_to_pay

    from paid_invoices

    where paid_on <= {{ q2c_as_of_date() }}

),

monthly as (

    select
        payment_month,
        account_key,
        currency,
        count(*) as allocation_count,
        sum(days_to_pay) as total_days_to_pay,
        sum(amount) as paid_amount,
        sum(days_to_pay * amount) as amount_weighted_days

    from measured

    group by payment_month, account_key, currency

),

final as (

    select
        monthly.payment_month,
        {{ q2c_as_of_date() }} as as_of_date,
        monthly.account_key,
        accounts.account_name,
        monthly.currency,
        monthly.allocation_count,
        cast(monthly.total_days_to_pay as {{ dbt.type_bigint() }}) as total_days_to_pay,
        cast(monthly.paid_amount as decimal(20, 4)) as paid_amount,
        cast(monthly.amount_weighted_days as decimal(28, 4)) as amount_weighted_days,
        cast(
            {{ q2c_ratio('monthly.total_days_to_pay', 'monthly.allocation_count') }}
            as decimal(12, 4)
        ) as avg_days_to_pay,
        cast(
            {{ q2c_ratio('monthly.amount_weighted_days', 'nullif(monthly.paid_amount, 0)') }}
            as decimal(12, 4)
        ) as weighted_avg_days_to_pay

    from monthly

    left join accounts
        on monthly.account_key = accounts.account_key

)

select * from final
