select
    invoice_id,
    line_index,
    tax_rate_id,
    tax_percent,
    taxable_amount,
    tax_amount

from {{ ref('stg_quickbooks__invoice_tax_lines') }}

where not coalesce(is_deleted, false)
