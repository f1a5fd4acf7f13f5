{#- QuickBooks credit memos. A credit memo does not name the invoice it corrects; it is
    applied to invoices through a zero-amount payment (see the payment allocations). -#}
select
    credit_memo_id as credit_note_id,
    credit_memo_number as credit_note_number,
    customer_id,
    cast(null as {{ dbt.type_string() }}) as invoice_id,
    currency_code,
    exchange_rate,
    total_amount,
    tax_amount,
    remaining_credit_amount,
    private_note as reason,
    issue_date,
    created_at,
    updated_at

from {{ ref('stg_quickbooks__credit_memos') }}

where not coalesce(is_deleted, false)
