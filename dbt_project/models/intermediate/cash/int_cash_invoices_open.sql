{#- What each invoice has open for cash once its ERP's applications and q2c's credit
    note applications are counted: the amount q2c's cash allocation may take, never more. -#}
with

invoices as (

    select * from {{ ref('int_cash_invoices_settled_by_erp') }}

),

credit_notes_applied as (

    select * from {{ ref('int_cash_credit_notes_applied') }}

),

credited as (

    select
        invoice_key,
        sum(amount) as credited_amount

    from credit_notes_applied

    group by invoice_key

),

final as (

    select
        invoices.invoice_key,
        invoices.source_system,
        invoices.invoice_number,
        invoices.invoice_number_normalized,
        invoices.account_key,
        invoices.currency,
        invoices.issue_date,
        invoices.effective_due_date,
        cast(
            invoices.open_amount - coalesce(credited.credited_amount, 0)
            as decimal(20, 4)
        ) as open_amount

    from invoices

    left join credited
        on invoices.invoice_key = credited.invoice_key

)

select * from final
