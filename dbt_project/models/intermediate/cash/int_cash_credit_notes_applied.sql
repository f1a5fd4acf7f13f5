{#- q2c's own application of credit notes (rule credit_note): a credit note that names
    the invoice it corrects is applied to it with what remains of the note (its total
    less what its ERP applied anywhere), never more than the invoice still has open after
    its ERP's applications. Several notes on one invoice take their turn by issue date,
    then key. A note in another currency than its invoice is not applied; what a note
    keeps is listed in mart_unallocated_cash. -#}
with

credit_notes as (

    select * from {{ ref('fct_credit_notes') }}

),

lines as (

    select * from {{ ref('int_cash_payment_lines_resolved') }}

),

invoices as (

    select * from {{ ref('int_cash_invoices_settled_by_erp') }}

),

applied_by_erp as (

    select
        credit_note_key,
        sum(amount) as applied_amount

    from lines

    where line_status = 'taken'
        and allocation_type = 'credit_note'
        and credit_note_key is not null

    group by credit_note_key

),

remaining as (

    select
        credit_notes.credit_note_key,
        credit_notes.invoice_key,
        credit_notes.currency,
        credit_notes.issue_date,
        credit_notes.total_amount - coalesce(applied_by_erp.applied_amount, 0)
            as remaining_amount

    from credit_notes

    left join applied_by_erp
        on credit_notes.credit_note_key = applied_by_erp.credit_note_key

    where credit_notes.invoice_key is not null

),

{#- Each invoice's notes laid end to end, in turn: a note covers the stretch from
    queue_end - remaining_amount to queue_end of what the invoice has open. -#}
queued as (

    select
        remaining.credit_note_key,
        remaining.invoice_key,
        invoices.account_key,
        remaining.currency,
        remaining.issue_date,
        invoices.issue_date as invoice_issue_date,
        remaining.remaining_amount,
        invoices.open_amount,
        sum(remaining.remaining_amount) over (
            partition by remaining.invoice_key
            order by remaining.issue_date, remaining.credit_note_key
            rows between unbounded preceding and current row
        ) as queue_end

    from remaining

    inner join invoices
        on remaining.invoice_key = invoices.invoice_key
        and remaining.currency = invoices.currency

    where remaining.remaining_amount > 0

),

final as (

    select
        credit_note_key,
        invoice_key,
        account_key,
        currency,
        coalesce(issue_date, invoice_issue_date) as allocated_on,
        cast(
            least(queue_end, open_amount)
            - least(queue_end - remaining_amount, open_amount)
            as decimal(20, 4)
        ) as amount

    from queued

)

select * from final
where amount > 0
