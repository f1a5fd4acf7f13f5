{#- The lines of NetSuite invoices other than the main line, tax lines and cost-of-goods
    postings, as document amounts: NetSuite stores sold lines as credits, so amount and
    quantity change sign (a discount line becomes negative, reducing the total). -#}
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
        case
            when lines.item_type = 'Discount' then 'discount'
            when lines.item_type = 'Subtotal' then 'subtotal'
            when lines.item_type = 'ShipItem' then 'shipping'
            when lines.item_type in (
                'InvtPart', 'NonInvtPart', 'Service', 'Assembly', 'Kit', 'OthCharge',
                'GiftCert', 'DwnLdItem'
            ) then 'item'
            else 'other'
        end as line_type,
        lines.item_id,
        cast(null as {{ dbt.type_string() }}) as item_name,
        lines.memo as description,
        -lines.quantity as quantity,
        lines.rate as unit_price,
        -lines.amount as amount,
        cast(null as {{ dbt.type_string() }}) as tax_code,
        case when lines.item_type = 'Discount' then abs(lines.rate_percent) end
            as discount_percent

    from lines

    inner join invoices
        on lines.transaction_id = invoices.transaction_id

    where not coalesce(lines.is_main_line, false)
        and not coalesce(lines.is_tax_line, false)
        and not coalesce(lines.is_cogs, false)

)

select * from final
