select
    opportunity_id,
    account_id,
    owner_id,
    opportunity_name,
    stage_name,
    opportunity_type,
    currency_code,
    amount,
    is_closed,
    is_won,
    close_date,
    created_at,
    updated_at

from {{ ref('stg_salesforce__opportunities') }}

where not coalesce(is_deleted, false)
