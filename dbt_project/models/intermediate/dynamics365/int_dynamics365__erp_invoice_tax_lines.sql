{#- Dynamics reports sales tax per invoice line (LineTotalTaxAmount): one tax line per
    taxed invoice line, the line amount as the taxable amount. -#}
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
        cast(null as {{ dbt.type_string() }}) as tax_rate_id,
        cast(null as decimal(9, 4)) as tax_percent,
        lines.line_amount as taxable_amount,
        lines.tax_amount

    from lines

    inner join invoices
        on lines.invoice_id = invoices.invoice_id

    where lines.tax_amount <> 0
        or (lines.tax_amount is null and lines.unparsed_fields is not null)

)

select * from final
