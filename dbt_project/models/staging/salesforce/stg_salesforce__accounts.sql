with

source as (

    select * from {{ source('salesforce', 'account') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as account_id,
        trim(account_number) as account_number,
        trim(parent_id) as parent_account_id,
        trim(owner_id) as owner_id,

        ---------- text
        name as account_name,
        type as account_type,
        industry,
        website,
        phone,
        trim(vat_number_c) as vat_number,
        lower(trim(preferred_language_c)) as preferred_language,
        nullif(
            {{ q2c_trim_chars(q2c_regex_replace('lower(segment_c)', '[^a-z]+', '_'), '_') }},
            ''
        ) as segment,
        nullif(lower(trim(invoice_delivery_channel_c)), '') as invoice_delivery_channel,
        nullif(lower(trim(einvoice_format_c)), '') as einvoice_format,
        nullif(trim(peppol_participant_id_c), '') as peppol_participant_id,
        nullif(lower(trim(x12_partner_c)), '') as x12_partner,

        ---------- billing address
        billing_street,
        billing_city,
        billing_postal_code,
        billing_state,
        billing_country,
        upper(trim(billing_country_code)) as billing_country_code,
        upper(trim(currency_iso_code)) as currency_code,

        ---------- booleans
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
