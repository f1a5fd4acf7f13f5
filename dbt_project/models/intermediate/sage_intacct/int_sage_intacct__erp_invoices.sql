{#- Sage Intacct AR invoices in their own currency; drafts are not issued and are left out.
    The tax is the sum of the lines Intacct adds itself (lineitem false). -#}
with

invoices as (

    select * from {{ ref('stg_sage_intacct__ar_invoices') }}
    where coalesce(state, '') <> 'Draft'

),

tax_lines as (

    select
        invoice_id,
        sum(amount) as tax_amount

    from {{ ref('stg_sage_intacct__ar_invoice_items') }}

    where not coalesce(is_line_item, true)

    group by invoice_id

),

final as (

    select
        invoices.invoice_id,
        invoices.invoice_number,
        invoices.customer_id,
        cast(null as {{ dbt.type_string() }}) as crm_opportunity_id,
        cast(null as {{ dbt.type_string() }}) as order_id,
        invoices.reference_number as po_number,
        invoices.currency_code,
        cast(null as {{ dbt.type_string() }}) as billing_email,
        invoices.description as customer_memo,
        cast(null as {{ dbt.type_string() }}) as email_status,
        invoices.exchange_rate,
        coalesce(tax_lines.tax_amount, 0) as tax_amount,
        invoices.total_amount,
        invoices.due_amount as balance_amount,
        invoices.base_total_amount as home_total_amount,
        invoices.invoice_date as issue_date,
        invoices.due_date,
        invoices.created_at,
        invoices.updated_at

    from invoices

    left join tax_lines
        on invoices.invoice_id = tax_lines.invoice_id

)

select * from final
