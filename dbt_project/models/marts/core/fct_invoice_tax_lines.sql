with

tax_lines as (

    select * from {{ ref('int_erp_invoice_tax_lines') }}

),

invoices as (

    select * from {{ ref('int_erp_invoices') }}

),

final as (

    select
        {{ q2c_surrogate_key(['tax_lines.source_system', 'tax_lines.invoice_id']) }}
            as invoice_key,
        tax_lines.source_system,
        {{ dbt.concat(['tax_lines.invoice_id', "'#'",
                       dbt.safe_cast('tax_lines.line_index', dbt.type_string())]) }}
            as source_id,
        tax_lines.invoice_id,
        tax_lines.line_index,
        tax_lines.tax_rate_id,
        tax_lines.tax_percent,
        tax_lines.taxable_amount,
        tax_lines.tax_amount,
        invoices.currency_code as currency

    from tax_lines

    inner join invoices
        on tax_lines.source_system = invoices.source_system
        and tax_lines.invoice_id = invoices.invoice_id

)

select * from final
