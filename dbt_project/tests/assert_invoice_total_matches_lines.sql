{{ config(severity='warn') }}
{#- QuickBooks total = sales lines - discounts + tax; a difference means lines are missing
    or the export disagrees with itself. -#}
select
    invoice_id,
    invoice_number,
    subtotal_amount,
    discount_amount,
    tax_amount,
    total_amount

from {{ ref('fct_invoices') }}

where subtotal_amount - discount_amount + coalesce(tax_amount, 0) != total_amount
