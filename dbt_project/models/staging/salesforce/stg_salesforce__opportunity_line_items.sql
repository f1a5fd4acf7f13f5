with

source as (

    select * from {{ source('salesforce', 'opportunity_line_item') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as opportunity_line_item_id,
        trim(opportunity_id) as opportunity_id,
        trim(product_2_id) as product_id,

        ---------- text
        product_code,
        name as line_name,
        description,

        ---------- numerics
        {{ q2c_decimal('quantity', 20, 6) }} as quantity,
        {{ q2c_decimal('unit_price', 20, 6) }} as unit_price,
        {{ q2c_decimal('list_price', 20, 6) }} as list_price,
        {{ q2c_amount('total_price') }} as total_price,
        {{ q2c_decimal('discount', 9, 4) }} as discount_percent,

        ---------- booleans
        {{ q2c_parse_bool('is_deleted') }} as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('created_date') }} as created_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed
    where not coalesce(is_deleted, false)

)

select * from final
