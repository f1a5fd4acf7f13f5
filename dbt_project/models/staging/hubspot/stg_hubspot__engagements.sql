with

source as (

    select * from {{ source('hubspot', 'engagement') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as engagement_id,
        trim(portal_id) as portal_id,
        nullif(trim(owner_id), '') as owner_id,

        ---------- text
        lower(trim({{ adapter.quote('type') }})) as engagement_type,

        ---------- timestamps (owner and times live here only in the pre-v3 shape)
        {{ q2c_parse_timestamp('created_at') }} as created_at,
        {{ q2c_parse_timestamp(adapter.quote('timestamp')) }} as occurred_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

)

select * from renamed
