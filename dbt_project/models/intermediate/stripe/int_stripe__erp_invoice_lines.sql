{#- Lines of the Stripe invoices of record (int_stripe__erp_invoices). Stripe keeps no line
    position, so line_index numbers an invoice's lines from 1 by service period start, then
    line id. Every Stripe line is an item: discounts and tax are amounts on the invoice,
    not lines, and the lines add up to the invoice subtotal. -#}
with

lines as (

    select * from {{ ref('stg_stripe__invoice_line_items') }}

),

invoices as (

    select * from {{ ref('int_stripe__erp_invoices') }}

),

final as (

    select
        lines.invoice_id,
        cast(row_number() over (
            partition by lines.invoice_id
            order by lines.period_start_at, lines.invoice_line_item_id
        ) as integer) as line_index,
        'item' as line_type,
        coalesce(lines.price_id, lines.plan_id) as item_id,
        cast(null as {{ dbt.type_string() }}) as item_name,
        lines.description,
        lines.quantity,
        lines.unit_amount_excluding_tax as unit_price,
        lines.amount,
        cast(null as {{ dbt.type_string() }}) as tax_code,
        cast(null as decimal(9, 4)) as discount_percent

    from lines

    inner join invoices
        on lines.invoice_id = invoices.invoice_id

)

select * from final
