{#- One tax line per Stripe invoice of record that carries tax: a non-zero tax amount, or
    an explicit tax percent (a 0 % rate is a statement worth keeping). Stripe adds exclusive
    tax on top of the discounted subtotal, so the taxable amount is the total less the tax.
    Per-rate breakdowns (total_tax_amounts) are not landed; one line holds the whole tax. -#}
with

invoices as (

    select * from {{ ref('stg_stripe__invoices') }}

),

invoices_of_record as (

    select * from {{ ref('int_stripe__erp_invoices') }}

),

final as (

    select
        invoices.invoice_id,
        1 as line_index,
        cast(null as {{ dbt.type_string() }}) as tax_rate_id,
        invoices.tax_percent,
        invoices.total_amount - invoices.tax_amount as taxable_amount,
        invoices.tax_amount

    from invoices

    inner join invoices_of_record
        on invoices.invoice_id = invoices_of_record.invoice_id

    where invoices.tax_amount is not null
        and (invoices.tax_amount <> 0 or invoices.tax_percent is not null)

)

select * from final
