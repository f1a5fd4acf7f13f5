{#- Sage Intacct AR payments in their own currency. What the payment's details did not pay
    to invoices is unapplied (Intacct keeps an overpayment on the customer's account). A
    payment that only applies a credit memo has a total of 0. -#}
with

payments as (

    select * from {{ ref('stg_sage_intacct__ar_payments') }}

),

paid as (

    select
        payment_id,
        sum(amount) as paid_amount

    from {{ ref('int_sage_intacct__payment_applications') }}

    where allocation_kind = 'payment'

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
        payments.total_amount - coalesce(paid.paid_amount, 0) as unapplied_amount,
        cast(null as decimal(20, 4)) as fee_amount,
        coalesce(payments.paid_date, payments.receipt_date) as payment_date,
        cast(null as {{ dbt.type_timestamp() }}) as created_at,
        payments.updated_at

    from payments

    left join paid
        on payments.payment_id = paid.payment_id

)

select * from final
