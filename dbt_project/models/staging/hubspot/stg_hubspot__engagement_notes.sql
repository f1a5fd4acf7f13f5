with

source as (

    select * from {{ source('hubspot', 'engagement_note') }}

),

renamed as (

    select
        ---------- ids
        trim(engagement_id) as engagement_id,
        nullif(trim(property_hubspot_owner_id), '') as owner_id,

        ---------- text
        lower(trim({{ adapter.quote('type') }})) as engagement_type,
        property_hs_body_preview as body_preview,

        ---------- booleans
        coalesce({{ q2c_parse_bool('_fivetran_deleted') }}, false) as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('property_hs_createdate') }} as created_at,
        {{ q2c_parse_timestamp('property_hs_timestamp') }} as occurred_at,
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
