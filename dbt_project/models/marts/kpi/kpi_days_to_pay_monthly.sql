{#- Days from invoice to payment per month of payment and currency, summed up from the
    per-account rows. Formula, grain and caveats: _kpi__models.yml. -#}
with

by_account as (

    select * from {{ ref('kpi_days_to_pay_by_account') }}

),

monthly as (

    select
        payment_month,
        currency,
        count(*) as account_count,
        sum(allocation_count) as allocation_count,
        sum(total_days_to_pay) as total_days_to_pay,
        sum(paid_amount) as paid_amount,
        sum(amount_weighted_days) as amount_weighted_days

    from by_account

    group by payment_month, currency

),

final as (

    select
        payment_month,
        {{ q2c_as_of_date() }} as as_of_date,
        currency,
        account_count,
        cast(allocation_count as {{ dbt.type_bigint() }}) as allocation_count,
        cast(total_days_to_pay as {{ dbt.type_bigint() }}) as total_days_to_pay,
        cast(paid_amount as decimal(20, 4)) as paid_amount,
        cast(amount_weighted_days as decimal(28, 4)) as amount_weighted_days,
        cast(
            {{ q2c_ratio('total_days_to_pay', 'allocation_count') }} as decimal(12, 4)
        ) as avg_days_to_pay,
        cast(
            {{ q2c_ratio('amount_weighted_days', 'nullif(paid_amount, 0)') }} as decimal(12, 4)
        ) as weighted_avg_days_to_pay

    from monthly

)

select * from final
