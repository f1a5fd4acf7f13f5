with

allocations as (

    select * from {{ ref('int_payment_allocations_classified') }}

),

final as (

    select
        {{ q2c_surrogate_key(["'quickbooks'", 'payment_id', 'line_index']) }}
            as allocation_key,
        payment_id,
        invoice_id,
        credit_memo_id,
        allocation_type,
        allocation_date,
        currency_code as currency,
        amount

    from allocations

)

select * from final
