{#- QuickBooks line detail types as q2c line types; the amount of a discount line is the
    discount's size, as QuickBooks stores it. -#}
with

invoice_lines as (

    select * from {{ ref('stg_quickbooks__invoice_lines') }}

),

items as (

    select * from {{ ref('stg_quickbooks__items') }}

),

final as (

    select
        invoice_lines.invoice_id,
        invoice_lines.line_index,
        case invoice_lines.detail_type
            when 'SalesItemLineDetail' then 'item'
            when 'DiscountLineDetail' then 'discount'
            when 'SubTotalLineDetail' then 'subtotal'
            else 'other'
        end as line_type,
        invoice_lines.item_id,
        items.item_name,
        invoice_lines.description,
        invoice_lines.quantity,
        invoice_lines.unit_price,
        invoice_lines.amount,
        invoice_lines.tax_code_id as tax_code,
        invoice_lines.discount_percent

    from invoice_lines

    left join items
        on invoice_lines.item_id = items.item_id

)

select * from final
