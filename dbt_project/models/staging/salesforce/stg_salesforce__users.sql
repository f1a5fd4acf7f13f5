with

source as (

    select * from {{ source('salesforce', 'user') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as user_id,

        ---------- text
        name as user_name,
        lower(trim(email)) as email,

        ---------- booleans
        {{ q2c_parse_bool('is_active') }} as is_active,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- timestamps
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
