{#- What each customer payment journal line applies, one row per line and invoice.
    The settled-invoice entity is the full record of a line's settlement: an invoice
    settled for a positive amount is paid, a credit note settled for a negative amount is
    used up. A line of amount 0 that settles a credit note applies that credit to its
    invoices (Dynamics' way of settling a credit note against an invoice). A line without
    settled rows that marks an invoice (MarkedInvoice) settles at most the invoice's total;
    the rest of the line stays open on the customer. -#}
with

journal_lines as (

    select * from {{ ref('stg_dynamics365__payment_journal_lines') }}
    where account_type = 'Cust'

),

settled as (

    select * from {{ ref('stg_dynamics365__settled_invoices') }}

),

headers as (

    select * from {{ ref('stg_dynamics365__invoice_headers') }}

),

settled_rows as (

    select
        journal_lines.payment_id,
        journal_lines.company_id,
        journal_lines.journal_batch_number,
        journal_lines.line_number,
        journal_lines.amount as line_amount,
        journal_lines.transaction_date,
        settled.invoice_id,
        settled.invoice_number,
        settled.settled_amount,
        coalesce(headers.total_amount < 0, settled.settled_amount < 0) as is_credit_note

    from journal_lines

    inner join settled
        on journal_lines.company_id = settled.company_id
        and journal_lines.journal_batch_number = settled.journal_batch_number
        and journal_lines.line_number = settled.line_number

    left join headers
        on settled.invoice_id = headers.invoice_id

),

line_credit_notes as (

    select
        company_id,
        journal_batch_number,
        line_number,
        min(invoice_id) as credit_note_id

    from settled_rows

    where is_credit_note

    group by company_id, journal_batch_number, line_number

),

from_settlement as (

    select
        settled_rows.payment_id,
        settled_rows.line_number,
        settled_rows.invoice_id,
        settled_rows.invoice_number,
        case
            when settled_rows.line_amount = 0 then line_credit_notes.credit_note_id
        end as credit_note_id,
        case
            when settled_rows.line_amount = 0 and line_credit_notes.credit_note_id is not null
                then 'credit_note'
            else 'payment'
        end as allocation_kind,
        settled_rows.settled_amount as amount,
        settled_rows.transaction_date as allocation_date

    from settled_rows

    left join line_credit_notes
        on settled_rows.company_id = line_credit_notes.company_id
        and settled_rows.journal_batch_number = line_credit_notes.journal_batch_number
        and settled_rows.line_number = line_credit_notes.line_number

    where not settled_rows.is_credit_note

),

from_marking as (

    select
        journal_lines.payment_id,
        journal_lines.line_number,
        journal_lines.marked_invoice_id as invoice_id,
        journal_lines.marked_invoice_number as invoice_number,
        cast(null as {{ dbt.type_string() }}) as credit_note_id,
        'payment' as allocation_kind,
        case
            when headers.total_amount < journal_lines.amount then headers.total_amount
            else journal_lines.amount
        end as amount,
        journal_lines.transaction_date as allocation_date

    from journal_lines

    left join headers
        on journal_lines.marked_invoice_id = headers.invoice_id

    where journal_lines.marked_invoice_id is not null
        and not exists (
            select 1
            from settled
            where settled.company_id = journal_lines.company_id
                and settled.journal_batch_number = journal_lines.journal_batch_number
                and settled.line_number = journal_lines.line_number
        )

),

final as (

    select * from from_settlement
    union all
    select * from from_marking

)

select * from final
