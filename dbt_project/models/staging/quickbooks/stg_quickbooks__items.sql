with

source as (

    select * from {{ source('quickbooks', 'item') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as item_id,

        ---------- text
        name as item_name,
        fully_qualified_name,
        description,
        type as item_type,

        ---------- numerics
        {{ q2c_decimal('unit_price', 20, 6) }} as unit_price,

        ---------- booleans
        {{ q2c_parse_bool('active') }} as is_active,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('created_at') }} as created_at,
        {{ q2c_parse_timestamp('updated_at') }} as updated_at,
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
