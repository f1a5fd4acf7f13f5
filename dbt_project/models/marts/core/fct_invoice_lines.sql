{#- Only lines that carry money into the invoice total: sales lines and discounts.
    Subtotal, group and description lines are layout, not amounts. -#}
with

invoice_lines as (

    select * from {{ ref('stg_quickbooks__invoice_lines') }}

),

invoices as (

    select * from {{ ref('stg_quickbooks__invoices') }}

),

items as (

    select * from {{ ref('stg_quickbooks__items') }}

),

final as (

    select
        {{ q2c_surrogate_key(["'quickbooks'", 'invoice_lines.invoice_id',
            'invoice_lines.line_index']) }} as invoice_line_key,
        {{ q2c_surrogate_key(["'quickbooks'", 'invoice_lines.invoice_id']) }}
            as invoice_key,
        invoice_lines.invoice_id,
        invoice_lines.line_index,
        case invoice_lines.detail_type
            when 'SalesItemLineDetail' then 'item'
            when 'DiscountLineDetail' then 'discount'
        end as line_type,
        invoice_lines.item_id,
        items.item_name,
        invoice_lines.description,
        invoice_lines.quantity,
        invoice_lines.unit_price,
        case
            when invoice_lines.detail_type = 'DiscountLineDetail'
                then -invoice_lines.amount
            else invoice_lines.amount
        end as amount,
        invoice_lines.tax_code_id as tax_code,
        invoices.currency_code as currency

    from invoice_lines

    inner join invoices
        on invoice_lines.invoice_id = invoices.invoice_id

    left join items
        on invoice_lines.item_id = items.item_id

    where invoice_lines.detail_type in ('SalesItemLineDetail', 'DiscountLineDetail')

)

select * from final
