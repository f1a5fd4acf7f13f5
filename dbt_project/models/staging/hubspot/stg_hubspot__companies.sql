with

source as (

    select * from {{ source('hubspot', 'company') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as company_id,
        trim(portal_id) as portal_id,
        trim(property_hubspot_owner_id) as owner_id,
        nullif(trim(property_hs_parent_company_id), '') as parent_company_id,

        ---------- text
        property_name as company_name,
        property_type as company_type,
        property_industry as industry,
        nullif(lower(trim(property_domain)), '') as domain,
        nullif(trim(property_website), '') as website,
        property_phone as phone,
        nullif(trim(property_vat_number), '') as vat_number,
        nullif(lower(trim(property_preferred_language)), '') as preferred_language,
        nullif(
            {{ q2c_trim_chars(q2c_regex_replace('lower(property_segment)', '[^a-z]+', '_'), '_') }},
            ''
        ) as segment,
        nullif(lower(trim(property_invoice_delivery_channel)), '') as invoice_delivery_channel,
        nullif(lower(trim(property_einvoice_format)), '') as einvoice_format,
        nullif(trim(property_peppol_participant_id), '') as peppol_participant_id,
        nullif(lower(trim(property_x12_partner)), '') as x12_partner,

        ---------- address
        nullif(trim(property_address), '') as street_address,
        nullif(trim(property_address_2), '') as street_address_2,
        property_city as city,
        property_zip as postal_code,
        property_state as state,
        nullif(trim(property_country), '') as country,

        ---------- booleans: HubSpot's own flag or Fivetran's
        coalesce({{ q2c_parse_bool('is_deleted') }}, false)
            or coalesce({{ q2c_parse_bool('_fivetran_deleted') }}, false) as is_deleted,

        ---------- timestamps
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
