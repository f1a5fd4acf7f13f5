{#- Rule remittance_reference: a payment whose reference names invoices pays them. An
    invoice is named when the payment's own lines name its number (any account: a gateway
    charge paying an ERP invoice), or when the remittance text holds its number as a
    whole (macros/q2c_references.sql) and the invoice is on the payment's account (a
    check number that happens to equal another customer's invoice number is not taken;
    mart_unallocated_cash proposes such invoices instead). Same currency always.

    A payment spreads what it has unapplied over the invoices it names, earliest due
    first, each up to its open amount; an invoice named by several payments gives what it
    has open to the earliest payment first (then by key). One row per payment and named
    invoice, also when nothing was left to take (amount 0): such a payment was allocated
    by its reference and is not allocated by amount or age. -#}
with

payments as (

    select * from {{ ref('int_cash_payments_unapplied') }}

),

references_normalized as (

    select * from {{ ref('int_cash_references_normalized') }}

),

invoices as (

    select * from {{ ref('int_cash_invoices_open') }}

),

named as (

    select distinct
        payments.payment_key,
        payments.payment_date,
        payments.unapplied_amount,
        invoices.invoice_key,
        invoices.issue_date,
        invoices.effective_due_date,
        invoices.open_amount

    from payments

    inner join references_normalized
        on payments.payment_key = references_normalized.payment_key

    inner join invoices
        on payments.currency = invoices.currency

    where payments.unapplied_amount > 0
        and invoices.invoice_number_normalized is not null
        and (
            (
                references_normalized.reference_kind = 'named_invoice'
                and references_normalized.reference_text
                    = invoices.invoice_number_normalized
            )
            or (
                references_normalized.reference_kind = 'remittance'
                and payments.account_key = invoices.account_key
                and {{ q2c_reference_holds('references_normalized.reference_text',
                                           'invoices.invoice_number_normalized') }}
            )
        )

),

{#- What each payment asks of each invoice it names: its unapplied amount laid over the
    named invoices' open amounts, earliest due first. -#}
asked as (

    select
        *,
        sum(open_amount) over (
            partition by payment_key
            order by effective_due_date, issue_date, invoice_key
            rows between unbounded preceding and current row
        ) as invoice_queue_end

    from named

),

asked_amounts as (

    select
        *,
        least(invoice_queue_end, unapplied_amount)
            - least(invoice_queue_end - open_amount, unapplied_amount) as asked_amount

    from asked

),

{#- What each invoice grants: its open amount laid over the payments asking for it,
    earliest payment first. -#}
granted as (

    select
        *,
        sum(asked_amount) over (
            partition by invoice_key
            order by payment_date, payment_key
            rows between unbounded preceding and current row
        ) as payment_queue_end

    from asked_amounts

),

final as (

    select
        payment_key,
        invoice_key,
        case
            when issue_date > payment_date then issue_date
            else payment_date
        end as allocated_on,
        cast(
            least(payment_queue_end, open_amount)
            - least(payment_queue_end - asked_amount, open_amount)
            as decimal(20, 4)
        ) as amount

    from granted

)

select * from final
