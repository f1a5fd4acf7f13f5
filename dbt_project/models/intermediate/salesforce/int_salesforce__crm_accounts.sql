select
    account_id,
    account_number,
    parent_account_id,
    owner_id,
    account_name,
    account_type,
    industry,
    website,
    phone,
    vat_number,
    preferred_language,
    segment,
    invoice_delivery_channel,
    einvoice_format,
    peppol_participant_id,
    x12_partner,
    billing_street,
    billing_city,
    billing_postal_code,
    billing_state,
    billing_country,
    billing_country_code,
    currency_code,
    created_at,
    updated_at

from {{ ref('stg_salesforce__accounts') }}

where not coalesce(is_deleted, false)
