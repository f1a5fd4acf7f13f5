with

source as (

    select * from {{ source('hubspot', 'owner') }}

),

renamed as (

    select
        ---------- ids
        trim(owner_id) as owner_id,
        nullif(trim(active_user_id), '') as active_user_id,
        trim(portal_id) as portal_id,

        ---------- text
        first_name,
        last_name,
        nullif(lower(trim(email)), '') as email,
        upper(trim({{ adapter.quote('type') }})) as owner_type,

        ---------- timestamps
        {{ q2c_parse_timestamp('created_at') }} as created_at,
        {{ q2c_parse_timestamp('updated_at') }} as updated_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

)

select * from renamed
