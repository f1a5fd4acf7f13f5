select
    invoice_id,
    invoice_number,
    customer_id,
    crm_opportunity_id,
    cast(null as {{ dbt.type_string() }}) as order_id,
    cast(null as {{ dbt.type_string() }}) as po_number,
    currency_code,
    billing_email,
    customer_memo,
    email_status,
    exchange_rate,
    tax_amount,
    total_amount,
    balance_amount,
    home_total_amount,
    issue_date,
    due_date,
    created_at,
    updated_at

from {{ ref('stg_quickbooks__invoices') }}

where not coalesce(is_deleted, false)
