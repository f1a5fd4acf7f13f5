with

source as (

    select * from {{ source('hubspot', 'engagement_meeting') }}

),

renamed as (

    select
        ---------- ids
        trim(engagement_id) as engagement_id,
        nullif(trim(property_hubspot_owner_id), '') as owner_id,

        ---------- text
        lower(trim({{ adapter.quote('type') }})) as engagement_type,
        coalesce(property_hs_meeting_title, title) as title,
        upper(trim(coalesce(property_hs_meeting_outcome, meeting_outcome))) as meeting_outcome,

        ---------- booleans
        coalesce({{ q2c_parse_bool('_fivetran_deleted') }}, false) as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('property_hs_createdate') }} as created_at,
        coalesce(
            {{ q2c_parse_timestamp('property_hs_timestamp') }},
            {{ q2c_parse_timestamp('property_hs_meeting_start_time') }},
            {{ q2c_parse_timestamp('start_time') }}
        ) as occurred_at,
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
