{#- Rule oldest_first: what payments still have unapplied after the reference and exact
    amount rules settles the invoices of the same account and currency that are still
    open, the earliest due first. Both sides are laid end to end per account and
    currency: invoices by due date, issue date and key, payments by date and key; where a
    payment's stretch overlaps an invoice's, the overlap is allocated. A payment larger
    than all that is open keeps the excess unallocated; one that is smaller leaves the
    last invoice it reaches partly open. Payments allocated by their reference are not
    allocated here. -#}
with

payments_unapplied as (

    select * from {{ ref('int_cash_payments_unapplied') }}

),

by_reference as (

    select * from {{ ref('int_cash_allocations_by_reference') }}

),

by_exact_amount as (

    select * from {{ ref('int_cash_allocations_by_exact_amount') }}

),

invoices_open as (

    select * from {{ ref('int_cash_invoices_open') }}

),

taken_before as (

    select
        invoice_key,
        sum(amount) as taken_amount

    from (
        select invoice_key, amount from by_reference
        union all
        select invoice_key, amount from by_exact_amount
    ) as earlier_rules

    group by invoice_key

),

payments as (

    select
        payment_key,
        account_key,
        currency,
        payment_date,
        unapplied_amount,
        sum(unapplied_amount) over (
            partition by account_key, currency
            order by payment_date, payment_key
            rows between unbounded preceding and current row
        ) as queue_end

    from payments_unapplied

    where unapplied_amount > 0
        and account_key is not null
        and not exists (
            select 1 from by_reference
            where by_reference.payment_key = payments_unapplied.payment_key
        )
        and not exists (
            select 1 from by_exact_amount
            where by_exact_amount.payment_key = payments_unapplied.payment_key
        )

),

invoices_left as (

    select
        invoices_open.invoice_key,
        invoices_open.account_key,
        invoices_open.currency,
        invoices_open.issue_date,
        invoices_open.effective_due_date,
        invoices_open.open_amount - coalesce(taken_before.taken_amount, 0) as open_amount

    from invoices_open

    left join taken_before
        on invoices_open.invoice_key = taken_before.invoice_key

    where invoices_open.account_key is not null

),

invoices as (

    select
        *,
        sum(open_amount) over (
            partition by account_key, currency
            order by effective_due_date, issue_date, invoice_key
            rows between unbounded preceding and current row
        ) as queue_end

    from invoices_left

    where open_amount > 0

),

overlapping as (

    select
        payments.payment_key,
        invoices.invoice_key,
        payments.payment_date,
        invoices.issue_date,
        least(payments.queue_end, invoices.queue_end)
            - greatest(
                payments.queue_end - payments.unapplied_amount,
                invoices.queue_end - invoices.open_amount
            ) as amount

    from payments

    inner join invoices
        on payments.account_key = invoices.account_key
        and payments.currency = invoices.currency
        and payments.queue_end - payments.unapplied_amount < invoices.queue_end
        and invoices.queue_end - invoices.open_amount < payments.queue_end

),

final as (

    select
        payment_key,
        invoice_key,
        case
            when issue_date > payment_date then issue_date
            else payment_date
        end as allocated_on,
        cast(amount as decimal(20, 4)) as amount

    from overlapping

)

select * from final
