{#- NetSuite customer payments (type CustPymt). What is not applied to an invoice is the
    main line's unused payment amount. -#}
with

payments as (

    select * from {{ ref('stg_netsuite__transactions') }}
    where transaction_type = 'CustPymt'

),

totals as (

    select * from {{ ref('int_netsuite__transaction_totals') }}

),

currencies as (

    select * from {{ ref('stg_netsuite__currencies') }}

),

final as (

    select
        payments.transaction_id as payment_id,
        payments.customer_id,
        totals.payment_method_id as payment_method,
        cast(null as {{ dbt.type_string() }}) as payment_channel,
        payments.reference_number,
        currencies.currency_code,
        payments.exchange_rate,
        abs(payments.total_amount) as total_amount,
        abs(totals.unused_payment_amount) as unapplied_amount,
        cast(null as decimal(20, 4)) as fee_amount,
        payments.transaction_date as payment_date,
        payments.created_at,
        payments.updated_at

    from payments

    left join totals
        on payments.transaction_id = totals.transaction_id

    left join currencies
        on payments.currency_id = currencies.currency_id

)

select * from final
