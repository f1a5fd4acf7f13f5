{#- The lines Intacct adds to an invoice itself (lineitem false), which carry its tax; the
    GL account they post to stands for the tax code. -#}
with

items as (

    select * from {{ ref('stg_sage_intacct__ar_invoice_items') }}
    where not coalesce(is_line_item, true)

),

invoices as (

    select invoice_id from {{ ref('stg_sage_intacct__ar_invoices') }}
    where coalesce(state, '') <> 'Draft'

),

final as (

    select
        items.invoice_id,
        items.line_number as line_index,
        coalesce(items.item_id, items.account_number) as tax_rate_id,
        cast(null as decimal(9, 4)) as tax_percent,
        cast(null as decimal(20, 4)) as taxable_amount,
        items.amount as tax_amount

    from items

    inner join invoices
        on items.invoice_id = invoices.invoice_id

)

select * from final
