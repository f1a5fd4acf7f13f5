select
    user_id,
    user_name,
    email,
    is_active

from {{ ref('stg_salesforce__users') }}

where not coalesce(is_deleted, false)
