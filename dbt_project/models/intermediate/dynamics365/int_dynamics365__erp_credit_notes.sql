{#- Dynamics credit notes: sales invoice headers with a negative total, as positive credit.
    The invoice is the only one settled on the journal lines that used the credit note;
    the remaining credit is the total less what those lines settled of it. -#}
with

credit_notes as (

    select * from {{ ref('stg_dynamics365__invoice_headers') }}
    where total_amount < 0

),

settled as (

    select * from {{ ref('stg_dynamics365__settled_invoices') }}

),

uses as (

    select
        company_id,
        journal_batch_number,
        line_number,
        invoice_id as credit_note_id,
        settled_amount

    from settled

    where settled_amount < 0

),

used as (

    select
        credit_note_id,
        sum(-settled_amount) as used_amount

    from uses

    group by credit_note_id

),

credited_invoices as (

    select
        uses.credit_note_id,
        min(settled.invoice_id) as invoice_id,
        count(distinct settled.invoice_id) as invoice_count

    from uses

    inner join settled
        on uses.company_id = settled.company_id
        and uses.journal_batch_number = settled.journal_batch_number
        and uses.line_number = settled.line_number
        and settled.settled_amount > 0

    group by uses.credit_note_id

),

final as (

    select
        credit_notes.invoice_id as credit_note_id,
        credit_notes.invoice_number as credit_note_number,
        credit_notes.customer_id,
        case
            when credited_invoices.invoice_count = 1 then credited_invoices.invoice_id
        end as invoice_id,
        credit_notes.currency_code,
        cast(null as decimal(20, 10)) as exchange_rate,
        -credit_notes.total_amount as total_amount,
        -credit_notes.tax_amount as tax_amount,
        -credit_notes.total_amount - coalesce(used.used_amount, 0) as remaining_credit_amount,
        cast(null as {{ dbt.type_string() }}) as reason,
        credit_notes.invoice_date as issue_date,
        cast(null as {{ dbt.type_timestamp() }}) as created_at,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at

    from credit_notes

    left join used
        on credit_notes.invoice_id = used.credit_note_id

    left join credited_invoices
        on credit_notes.invoice_id = credited_invoices.credit_note_id

)

select * from final
