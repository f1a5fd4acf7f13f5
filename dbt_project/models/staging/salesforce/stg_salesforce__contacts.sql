with

source as (

    select * from {{ source('salesforce', 'contact') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as contact_id,
        trim(account_id) as account_id,

        ---------- text
        first_name,
        last_name,
        coalesce(
            nullif(trim(name), ''),
            nullif(trim(concat_ws(' ', first_name, last_name)), '')
        ) as contact_name,
        lower(trim(email)) as email,
        title,
        phone,
        upper(trim(mailing_country_code)) as mailing_country_code,

        ---------- booleans
        {{ q2c_parse_bool('is_billing_contact_c') }} as is_billing_contact,
        {{ q2c_parse_bool('has_opted_out_of_email') }} as has_opted_out_of_email,
        {{ q2c_parse_bool('is_deleted') }} as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('created_date') }} as created_at,
        {{ q2c_parse_timestamp('last_modified_date') }} as updated_at,
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
