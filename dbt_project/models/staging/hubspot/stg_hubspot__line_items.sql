with

source as (

    select * from {{ source('hubspot', 'line_item') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as line_item_id,
        nullif(trim(product_id), '') as product_id,
        nullif(trim(property_hs_product_id), '') as hs_product_id,

        ---------- text
        property_name as line_name,
        property_description as description,
        nullif(trim(property_hs_sku), '') as sku,
        nullif(upper(trim(property_hs_line_item_currency_code)), '') as currency_code,

        ---------- numerics
        {{ q2c_decimal('property_quantity', 20, 6) }} as quantity,
        {{ q2c_decimal('property_price', 20, 6) }} as unit_price,
        {{ q2c_decimal('property_discount', 20, 6) }} as unit_discount,
        {{ q2c_decimal('property_hs_discount_percentage', 9, 4) }} as discount_percent,
        {{ q2c_amount('property_amount') }} as amount,

        ---------- booleans
        coalesce({{ q2c_parse_bool('_fivetran_deleted') }}, false) as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('property_createdate') }} as created_at,
        {{ q2c_parse_timestamp('property_hs_lastmodifieddate') }} as updated_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed
    where not is_deleted

)

select * from final
