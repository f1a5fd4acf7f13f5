select
    opportunity_line_item_id,
    opportunity_id,
    product_id,
    product_code,
    line_name,
    description,
    quantity,
    unit_price,
    list_price,
    total_price,
    discount_percent,
    created_at

from {{ ref('stg_salesforce__opportunity_line_items') }}

where not coalesce(is_deleted, false)
