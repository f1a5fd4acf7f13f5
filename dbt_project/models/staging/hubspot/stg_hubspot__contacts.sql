with

source as (

    select * from {{ source('hubspot', 'contact') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as contact_id,
        nullif(trim(property_associatedcompanyid), '') as company_id,

        ---------- text
        property_firstname as first_name,
        property_lastname as last_name,
        nullif(lower(trim(property_email)), '') as email,
        property_jobtitle as job_title,
        property_phone as phone,
        nullif(trim(property_country), '') as country,

        ---------- booleans
        {{ q2c_parse_bool('property_billing_contact') }} as is_billing_contact_flag,
        {{ q2c_parse_bool('property_hs_email_optout') }} as has_opted_out_of_email,
        coalesce({{ q2c_parse_bool('_fivetran_deleted') }}, false) as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('property_createdate') }} as created_at,
        {{ q2c_parse_timestamp('property_lastmodifieddate') }} as updated_at,
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
