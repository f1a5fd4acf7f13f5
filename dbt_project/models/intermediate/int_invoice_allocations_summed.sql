{#- What has been applied to each invoice: cash paid and credit notes applied, kept apart
    because a credited invoice is settled but was never paid. -#}
with

allocations as (

    select * from {{ ref('int_payment_allocations_classified') }}

),

final as (

    select
        invoice_id,
        cast(coalesce(sum(
            case when allocation_type = 'payment' then amount end
        ), 0) as decimal(20, 4)) as paid_amount,
        cast(coalesce(sum(
            case when allocation_type = 'credit_note' then amount end
        ), 0) as decimal(20, 4)) as credited_amount,
        count(*) as allocation_count,
        max(allocation_date) as last_allocation_date

    from allocations

    group by invoice_id

)

select * from final
