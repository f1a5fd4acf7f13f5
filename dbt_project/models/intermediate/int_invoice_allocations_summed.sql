{#- What has been applied to each invoice: cash paid (less refunds and chargebacks) and
    credit notes applied, kept apart because a credited invoice is settled but was never
    paid. Gateway fees are the seller's cost and do not settle anything. A credit note that
    names its invoice (Stripe, NetSuite) credits it even without an allocation line; one
    that is also allocated counts once. -#}
with

allocations as (

    select * from {{ ref('int_payment_allocations_classified') }}

),

credit_notes as (

    select * from {{ ref('int_erp_credit_notes') }}

),

settlements as (

    select
        source_system,
        invoice_id,
        allocation_type,
        amount,
        allocation_date

    from allocations

    where invoice_id is not null
        and allocation_type <> 'fee'

    union all

    select
        credit_notes.source_system,
        credit_notes.invoice_id,
        'credit_note' as allocation_type,
        credit_notes.total_amount as amount,
        credit_notes.issue_date as allocation_date

    from credit_notes

    where credit_notes.invoice_id is not null
        and not exists (
            select 1 from allocations
            where allocations.source_system = credit_notes.source_system
                and allocations.credit_note_id = credit_notes.credit_note_id
        )

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

    from settlements

    group by source_system, invoice_id

)

select * from final
