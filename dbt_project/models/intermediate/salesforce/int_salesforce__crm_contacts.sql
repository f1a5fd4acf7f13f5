select
    contact_id,
    account_id,
    first_name,
    last_name,
    contact_name,
    email,
    title,
    phone,
    mailing_country_code,
    is_billing_contact,
    has_opted_out_of_email,
    created_at,
    updated_at

from {{ ref('stg_salesforce__contacts') }}

where not coalesce(is_deleted, false)
