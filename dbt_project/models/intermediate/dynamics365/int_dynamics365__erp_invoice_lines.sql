{#- The lines of Dynamics sales invoices (not of credit notes). LineAmount is net of the
    line's discount and without tax; every line is a product line. -#}
with

lines as (

    select * from {{ ref('stg_dynamics365__invoice_lines') }}

),

invoices as (

    select invoice_id from {{ ref('stg_dynamics365__invoice_headers') }}
    where total_amount >= 0 or total_amount is null

),

final as (

    select
        lines.invoice_id,
        lines.line_number as line_index,
        'item' as line_type,
        lines.product_number as item_id,
        lines.product_name as item_name,
        lines.product_description as description,
        lines.quantity,
        lines.unit_price,
        lines.line_amount as amount,
        cast(null as {{ dbt.type_string() }}) as tax_code,
        cast(null as decimal(9, 4)) as discount_percent

    from lines

    inner join invoices
        on lines.invoice_id = invoices.invoice_id

)

select * from final
