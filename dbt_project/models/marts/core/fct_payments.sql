with

payments as (

    select * from {{ ref('stg_quickbooks__payments') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

final as (

    select
        {{ q2c_surrogate_key(["'quickbooks'", 'payments.payment_id']) }} as payment_key,
        payments.payment_id,
        'quickbooks' as source_system,
        accounts.account_key,
        payments.customer_id as erp_customer_id,
        payments.payment_date,
        payments.currency_code as currency,
        payments.total_amount as amount,
        payments.unapplied_amount,
        payments.reference_number,
        payments.exchange_rate,
        cast(
            payments.total_amount * coalesce(payments.exchange_rate, 1)
            as decimal(20, 4)
        ) as amount_home

    from payments

    left join accounts
        on payments.customer_id = accounts.erp_customer_id

)

select * from final
