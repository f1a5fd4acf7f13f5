{#- Only lines that carry money into the invoice total: items, shipping and discounts (a
    discount always negative here, whatever sign its source stores). Subtotal and other
    lines are layout, not amounts. -#}
with

invoice_lines as (

    select * from {{ ref('int_erp_invoice_lines') }}

),

invoices as (

    select * from {{ ref('int_erp_invoices') }}

),

final as (

    select
        {{ q2c_surrogate_key(['invoice_lines.source_system', 'invoice_lines.invoice_id',
            'invoice_lines.line_index']) }} as invoice_line_key,
        {{ q2c_surrogate_key(['invoice_lines.source_system', 'invoice_lines.invoice_id']) }}
            as invoice_key,
        invoice_lines.source_system,
        {{ dbt.concat(['invoice_lines.invoice_id', "'#'",
                       dbt.safe_cast('invoice_lines.line_index', dbt.type_string())]) }}
            as source_id,
        invoice_lines.invoice_id,
        invoice_lines.line_index,
        invoice_lines.line_type,
        invoice_lines.item_id,
        invoice_lines.item_name,
        invoice_lines.description,
        invoice_lines.quantity,
        invoice_lines.unit_price,
        case
            when invoice_lines.line_type = 'discount' then -abs(invoice_lines.amount)
            else invoice_lines.amount
        end as amount,
        invoice_lines.tax_code,
        invoices.currency_code as currency

    from invoice_lines

    inner join invoices
        on invoice_lines.source_system = invoices.source_system
        and invoice_lines.invoice_id = invoices.invoice_id

    where invoice_lines.line_type in ('item', 'shipping', 'discount')

)

select * from final
