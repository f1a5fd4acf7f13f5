with

payments as (

    select * from {{ ref('int_erp_payments') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates_daily') }}

),

final as (

    select
        {{ q2c_surrogate_key(['payments.source_system', 'payments.payment_id']) }}
            as payment_key,
        payments.payment_id,
        payments.source_system,
        payments.payment_id as source_id,
        accounts.account_key,
        payments.customer_id as erp_customer_id,
        payments.payment_date,
        payments.currency_code as currency,
        payments.total_amount as amount,
        payments.unapplied_amount,
        coalesce(payments.fee_amount, 0) as fee_amount,
        payments.payment_method,
        payments.payment_channel,
        payments.reference_number,
        payments.exchange_rate,
        cast(
            coalesce(
                payments.total_amount * payments.exchange_rate,
                case when payments.currency_code
                    = {{ q2c_home_currency('payments.source_system') }}
                    then payments.total_amount end
            )
            as decimal(20, 4)
        ) as amount_home,
        cast(
            payments.total_amount
            * {{ q2c_reporting_rate('payments.currency_code', 'payments.exchange_rate',
                                    'fx_rates.rate', 'payments.source_system') }}
            as decimal(20, 4)
        ) as amount_reporting

    from payments

    left join accounts
        on payments.source_system = accounts.erp_source_system
        and payments.customer_id = accounts.erp_customer_id

    left join fx_rates
        on payments.currency_code = fx_rates.currency
        and payments.payment_date >= fx_rates.valid_from
        and payments.payment_date < fx_rates.valid_to

)

select * from final
