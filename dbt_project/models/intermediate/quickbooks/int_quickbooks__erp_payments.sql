select
    payment_id,
    customer_id,
    payment_method_id as payment_method,
    cast(null as {{ dbt.type_string() }}) as payment_channel,
    reference_number,
    currency_code,
    exchange_rate,
    total_amount,
    unapplied_amount,
    cast(null as decimal(20, 4)) as fee_amount,
    payment_date,
    created_at,
    updated_at

from {{ ref('stg_quickbooks__payments') }}

where not coalesce(is_deleted, false)
