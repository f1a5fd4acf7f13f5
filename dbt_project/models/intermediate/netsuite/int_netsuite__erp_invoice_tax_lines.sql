{#- The tax lines of NetSuite invoices: the tax code item, the rate shown on the line and
    the tax as a document amount (NetSuite stores it as a credit). -#}
with

invoices as (

    select transaction_id from {{ ref('stg_netsuite__transactions') }}
    where transaction_type = 'CustInvc'

),

lines as (

    select * from {{ ref('stg_netsuite__transaction_lines') }}

),

final as (

    select
        lines.transaction_id as invoice_id,
        lines.line_sequence_number as line_index,
        lines.item_id as tax_rate_id,
        abs(lines.rate_percent) as tax_percent,
        cast(null as decimal(20, 4)) as taxable_amount,
        -lines.amount as tax_amount

    from lines

    inner join invoices
        on lines.transaction_id = invoices.transaction_id

    where lines.is_tax_line
        and not coalesce(lines.is_main_line, false)

)

select * from final
