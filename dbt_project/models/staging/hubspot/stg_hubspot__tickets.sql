with

source as (

    select * from {{ source('hubspot', 'ticket') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as ticket_id,
        trim(portal_id) as portal_id,
        nullif(trim(property_hs_pipeline), '') as pipeline_id,
        nullif(trim(property_hs_pipeline_stage), '') as stage_id,
        nullif(trim(property_hubspot_owner_id), '') as owner_id,
        nullif(trim(property_invoice_number), '') as invoice_number,

        ---------- text
        property_subject as subject,
        property_content as content,
        nullif(upper(trim(property_hs_ticket_category)), '') as category,
        nullif(upper(trim(property_hs_ticket_priority)), '') as priority,
        nullif(upper(trim(property_source_type)), '') as source_type,

        ---------- booleans: HubSpot's own flag or Fivetran's
        coalesce({{ q2c_parse_bool('is_deleted') }}, false)
            or coalesce({{ q2c_parse_bool('_fivetran_deleted') }}, false) as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('property_createdate') }} as created_at,
        {{ q2c_parse_timestamp('property_closed_date') }} as closed_at,
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
