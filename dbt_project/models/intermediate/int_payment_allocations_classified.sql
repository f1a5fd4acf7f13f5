{#- Every amount a payment applies to an invoice of its own system, classified. The kind a
    source states wins; otherwise a line naming a credit note applies that credit and any
    other line is a payment. A line that names only an invoice number is resolved to the
    invoice with that number in the same system. Lines of deleted or missing payments are
    dropped, since their date and currency are unknown. -#}
with

allocations as (

    select * from {{ ref('int_erp_payment_allocations') }}

),

payments as (

    select * from {{ ref('int_erp_payments') }}

),

invoices as (

    select * from {{ ref('int_erp_invoices_all') }}

),

credit_notes as (

    select * from {{ ref('int_erp_credit_notes') }}

),

final as (

    select
        allocations.source_system,
        allocations.payment_id,
        payments.payment_id is not null as has_payment,
        allocations.line_index,
        coalesce(allocations.invoice_id, invoices.invoice_id) as invoice_id,
        allocations.credit_note_id,
        coalesce(
            allocations.allocation_kind,
            case when allocations.credit_note_id is not null then 'credit_note' end,
            'payment'
        ) as allocation_type,
        coalesce(allocations.allocation_date, payments.payment_date) as allocation_date,
        coalesce(payments.currency_code, credit_notes.currency_code) as currency_code,
        allocations.amount

    from allocations

    left join payments
        on allocations.source_system = payments.source_system
        and allocations.payment_id = payments.payment_id

    left join credit_notes
        on allocations.source_system = credit_notes.source_system
        and allocations.credit_note_id = credit_notes.credit_note_id

    left join invoices
        on allocations.invoice_id is null
        and allocations.source_system = invoices.source_system
        and allocations.invoice_number = invoices.invoice_number

    where (
            payments.payment_id is not null
            or (allocations.credit_note_id is not null and credit_notes.credit_note_id is not null)
        )
        and (
            coalesce(allocations.invoice_id, invoices.invoice_id) is not null
            or allocations.allocation_kind = 'fee'
        )

)

select * from final
