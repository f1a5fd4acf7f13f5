{#- One payment per journal voucher of customer lines: a receipt split over several lines
    (one per invoice) is one payment. What its lines did not pay to invoices is unapplied;
    the applications are taken to be in the payment's currency. -#}
with

journal_lines as (

    select * from {{ ref('stg_dynamics365__payment_journal_lines') }}
    where account_type = 'Cust'

),

applications as (

    select
        payment_id,
        sum(amount) as applied_amount

    from {{ ref('int_dynamics365__payment_applications') }}

    where allocation_kind = 'payment'

    group by payment_id

),

payments as (

    select
        payment_id,
        min(customer_id) as customer_id,
        min(payment_method) as payment_method,
        min(payment_reference) as reference_number,
        min(currency_code) as currency_code,
        min(exchange_rate) as exchange_rate,
        case when count(*) = count(amount) then sum(amount) end as total_amount,
        min(transaction_date) as payment_date

    from journal_lines

    group by payment_id

),

final as (

    select
        payments.payment_id,
        payments.customer_id,
        payments.payment_method,
        cast(null as {{ dbt.type_string() }}) as payment_channel,
        payments.reference_number,
        payments.currency_code,
        payments.exchange_rate,
        payments.total_amount,
        payments.total_amount - coalesce(applications.applied_amount, 0) as unapplied_amount,
        cast(null as decimal(20, 4)) as fee_amount,
        payments.payment_date,
        cast(null as {{ dbt.type_timestamp() }}) as created_at,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at

    from payments

    left join applications
        on payments.payment_id = applications.payment_id

)

select * from final
