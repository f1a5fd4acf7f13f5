{#- Fivetran lands a sales line's item, quantity and tax code either in the detail-prefixed
    columns (sales_item_*) or, in older syncs, in flat ones; the detail column wins. -#}
with

source as (

    select * from {{ source('quickbooks', 'invoice_line') }}

),

renamed as (

    select
        ---------- ids
        trim(invoice_id) as invoice_id,
        {{ q2c_int(adapter.quote('index')) }} as line_index,
        trim(coalesce(sales_item_item_id, item_id)) as item_id,
        trim(coalesce(sales_item_tax_code_id, tax_code_id)) as tax_code_id,
        trim(sub_total_item_id) as sub_total_item_id,

        ---------- text
        trim(detail_type) as detail_type,
        description,

        ---------- numerics
        {{ q2c_amount('amount') }} as amount,
        {{ q2c_decimal('coalesce(sales_item_quantity, quantity)', 20, 6) }} as quantity,
        {{ q2c_decimal('sales_item_unit_price', 20, 6) }} as unit_price,
        {{ q2c_decimal('discount_discount_percent', 9, 4) }} as discount_percent,

        ---------- booleans
        {{ q2c_parse_bool('discount_percent_based') }} as is_discount_percent_based,

        ---------- timestamps
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed

)

select * from final
