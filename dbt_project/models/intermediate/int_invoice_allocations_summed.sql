{#- What has been applied to each invoice: cash paid (less refunds and chargebacks) and
    credit notes applied, kept apart because a credited invoice is settled but was never
    paid. Gateway fees are the seller's cost and do not settle anything. -#}
with

allocations as (

    select * from {{ ref('int_payment_allocations_classified') }}

),

final as (

    select
        source_system,
        invoice_id,
        cast(coalesce(sum(
            case
                when allocation_type = 'payment' then amount
                when allocation_type in ('refund', 'chargeback') then -abs(amount)
            end
        ), 0) as decimal(20, 4)) as paid_amount,
        cast(coalesce(sum(
            case when allocation_type = 'credit_note' then amount end
        ), 0) as decimal(20, 4)) as credited_amount,
        count(*) as allocation_count,
        max(allocation_date) as last_allocation_date

    from allocations

    where invoice_id is not null
        and allocation_type <> 'fee'

    group by source_system, invoice_id

)

select * from final
