{#- Share of payments made through the customer portal, per month of payment. Formula,
    grain and caveats: _kpi__models.yml. -#}
with

payments as (

    select * from {{ ref('fct_payments') }}

),

received as (

    select
        cast({{ dbt.date_trunc('month', 'payment_date') }} as date) as payment_month,
        coalesce(payment_channel = 'portal', false) as is_portal,
        amount_reporting

    from payments

    where amount > 0
        and payment_date <= {{ q2c_as_of_date() }}

),

monthly as (

    select
        payment_month,
        count(*) as payment_count,
        count(case when is_portal then 1 end) as portal_payment_count,
        sum(amount_reporting) as amount_reporting,
        sum(case when is_portal then amount_reporting else 0 end) as portal_amount_reporting,
        count(*) - count(amount_reporting) as payments_without_reporting_amount

    from received

    group by payment_month

),

final as (

    select
        payment_month,
        {{ q2c_as_of_date() }} as as_of_date,
        payment_count,
        portal_payment_count,
        cast(
            {{ q2c_ratio('portal_payment_count', 'payment_count') }} as decimal(9, 4)
        ) as portal_count_share,
        cast(amount_reporting as decimal(20, 4)) as amount_reporting,
        cast(portal_amount_reporting as decimal(20, 4)) as portal_amount_reporting,
        cast(
            {{ q2c_ratio('portal_amount_reporting', 'nullif(amount_reporting, 0)') }}
            as decimal(9, 4)
        ) as portal_amount_share,
        payments_without_reporting_amount

    from monthly

)

select * from final
