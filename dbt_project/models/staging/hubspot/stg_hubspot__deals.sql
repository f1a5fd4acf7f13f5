with

source as (

    select * from {{ source('hubspot', 'deal') }}

),

renamed as (

    select
        ---------- ids
        trim(deal_id) as deal_id,
        trim(portal_id) as portal_id,
        nullif(trim(deal_pipeline_id), '') as pipeline_id,
        nullif(trim(deal_pipeline_stage_id), '') as stage_id,
        nullif(trim(owner_id), '') as owner_id,

        ---------- text
        property_dealname as deal_name,
        property_description as description,
        property_dealtype as deal_type,
        nullif(upper(trim(property_deal_currency_code)), '') as currency_code,

        ---------- numerics
        {{ q2c_amount('property_amount') }} as amount,

        ---------- booleans: HubSpot's calculated flags, used when the stage is unknown
        {{ q2c_parse_bool('property_hs_is_closed') }} as is_closed_flag,
        {{ q2c_parse_bool('property_hs_is_closed_won') }} as is_closed_won_flag,
        coalesce({{ q2c_parse_bool('is_deleted') }}, false)
            or coalesce({{ q2c_parse_bool('_fivetran_deleted') }}, false) as is_deleted,

        ---------- dates and timestamps
        {{ q2c_parse_date('property_closedate') }} as close_date,
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
