{{ config(severity='warn') }}
{#- The ERP balance should equal total - paid - credited; a difference means a payment or
    credit is missing from the sync or the ERP data disagrees with itself. -#}
select
    invoice_id,
    invoice_number,
    total_amount,
    paid_amount,
    credited_amount,
    balance_amount,
    computed_balance_amount

from {{ ref('fct_invoices') }}

where balance_amount != computed_balance_amount
