{#- The lines a user entered on Sage Intacct invoices (lineitem true), in the invoice's
    currency; Intacct's AR lines carry an amount but no quantity or unit price. -#}
with

items as (

    select * from {{ ref('stg_sage_intacct__ar_invoice_items') }}
    where coalesce(is_line_item, true)

),

invoices as (

    select invoice_id from {{ ref('stg_sage_intacct__ar_invoices') }}
    where coalesce(state, '') <> 'Draft'

),

final as (

    select
        items.invoice_id,
        items.line_number as line_index,
        'item' as line_type,
        items.item_id,
        items.item_name,
        items.description,
        cast(null as decimal(20, 6)) as quantity,
        cast(null as decimal(20, 6)) as unit_price,
        items.amount,
        cast(null as {{ dbt.type_string() }}) as tax_code,
        cast(null as decimal(9, 4)) as discount_percent

    from items

    inner join invoices
        on items.invoice_id = invoices.invoice_id

)

select * from final
