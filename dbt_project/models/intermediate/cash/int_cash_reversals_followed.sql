{#- Refunds and chargebacks that no recorded line ties to an invoice q2c has (those of a
    gateway charge that named only an ERP invoice number, or that name no invoice at
    all) follow the payment: they reverse cash on the invoices q2c allocated it to,
    the last allocation first (latest rule, then latest date, then key), each invoice at
    most what it received. Both sides are laid end to end per payment: reversals by date
    and key, allocations in that reverse order. A reversal larger than what q2c allocated
    returns the rest out of the payment's unallocated cash (mart_unallocated_cash).
    Amounts are negative, as the reversal lines are. -#}
with

lines as (

    select * from {{ ref('int_cash_payment_lines_resolved') }}

),

payments_allocated as (

    select * from {{ ref('int_cash_payments_allocated') }}

),

reversals as (

    select
        line_key,
        payment_key,
        allocation_type,
        allocation_date,
        -amount as reversal_amount,
        sum(-amount) over (
            partition by payment_key
            order by allocation_date, line_key
            rows between unbounded preceding and current row
        ) as queue_end

    from lines

    where line_status in ('number_only', 'payment_only')
        and allocation_type in ('refund', 'chargeback')
        and payment_key is not null
        and amount < 0

),

allocations as (

    select
        payment_key,
        invoice_key,
        amount,
        sum(amount) over (
            partition by payment_key
            order by rule_order desc, allocated_on desc, invoice_key desc
            rows between unbounded preceding and current row
        ) as queue_end

    from payments_allocated

),

overlapping as (

    select
        reversals.line_key,
        reversals.payment_key,
        allocations.invoice_key,
        reversals.allocation_type,
        reversals.allocation_date,
        least(reversals.queue_end, allocations.queue_end)
            - greatest(
                reversals.queue_end - reversals.reversal_amount,
                allocations.queue_end - allocations.amount
            ) as reversed_amount

    from reversals

    inner join allocations
        on reversals.payment_key = allocations.payment_key
        and reversals.queue_end - reversals.reversal_amount < allocations.queue_end
        and allocations.queue_end - allocations.amount < reversals.queue_end

),

final as (

    select
        line_key,
        payment_key,
        invoice_key,
        allocation_type,
        allocation_date as allocated_on,
        cast(-reversed_amount as decimal(20, 4)) as amount

    from overlapping

)

select * from final
