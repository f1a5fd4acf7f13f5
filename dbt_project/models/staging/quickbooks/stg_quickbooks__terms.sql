with

source as (

    select * from {{ source('quickbooks', 'term') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as term_id,

        ---------- text
        name as term_name,
        type as term_type,

        ---------- numerics
        {{ q2c_int('due_days') }} as due_days,
        {{ q2c_int('discount_days') }} as discount_days,
        {{ q2c_decimal('discount_percent', 9, 4) }} as discount_percent,

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
