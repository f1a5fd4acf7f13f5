{#- Rule exact_amount: a payment with no reference match whose unapplied amount equals
    what an invoice on the same account and currency still has open (after the reference
    allocations) pays that invoice. Payments and invoices of one account, currency and
    amount are paired in order, the earliest payment (then by key) with the earliest due
    invoice (then issue date, then key), so no invoice is taken twice. -#}
with

payments_unapplied as (

    select * from {{ ref('int_cash_payments_unapplied') }}

),

by_reference as (

    select * from {{ ref('int_cash_allocations_by_reference') }}

),

invoices_open as (

    select * from {{ ref('int_cash_invoices_open') }}

),

taken_by_reference as (

    select
        invoice_key,
        sum(amount) as taken_amount

    from by_reference

    group by invoice_key

),

payments as (

    select
        payment_key,
        account_key,
        currency,
        payment_date,
        unapplied_amount,
        row_number() over (
            partition by account_key, currency, unapplied_amount
            order by payment_date, payment_key
        ) as amount_turn

    from payments_unapplied

    where unapplied_amount > 0
        and account_key is not null
        and not exists (
            select 1 from by_reference
            where by_reference.payment_key = payments_unapplied.payment_key
        )

),

invoices_left as (

    select
        invoices_open.invoice_key,
        invoices_open.account_key,
        invoices_open.currency,
        invoices_open.issue_date,
        invoices_open.effective_due_date,
        cast(
            invoices_open.open_amount - coalesce(taken_by_reference.taken_amount, 0)
            as decimal(20, 4)
        ) as open_amount

    from invoices_open

    left join taken_by_reference
        on invoices_open.invoice_key = taken_by_reference.invoice_key

    where invoices_open.account_key is not null

),

invoices as (

    select
        *,
        row_number() over (
            partition by account_key, currency, open_amount
            order by effective_due_date, issue_date, invoice_key
        ) as amount_turn

    from invoices_left

    where open_amount > 0

),

final as (

    select
        payments.payment_key,
        invoices.invoice_key,
        case
            when invoices.issue_date > payments.payment_date then invoices.issue_date
            else payments.payment_date
        end as allocated_on,
        payments.unapplied_amount as amount

    from payments

    inner join invoices
        on payments.account_key = invoices.account_key
        and payments.currency = invoices.currency
        and payments.unapplied_amount = invoices.open_amount
        and payments.amount_turn = invoices.amount_turn

)

select * from final
