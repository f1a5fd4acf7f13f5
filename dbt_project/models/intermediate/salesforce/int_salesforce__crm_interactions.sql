{#- Salesforce cases as interactions. A case of type 'Billing Dispute' contests the invoice
    named in invoice_number_c; any case whose type mentions billing or invoices, or that
    names an invoice, is a billing case. Salesforce does not count contacts per case. -#}
select
    case_id as interaction_id,
    account_id,
    contact_id,
    cast(null as {{ dbt.type_string() }}) as owner_id,
    'case' as interaction_type,
    case_number as reference_number,
    subject,
    case_type as category,
    (
        lower(coalesce(case_type, '')) like '%billing%'
        or lower(coalesce(case_type, '')) like '%invoice%'
        or invoice_number is not null
    ) as is_billing,
    lower(coalesce(case_type, '')) = 'billing dispute' as is_dispute,
    invoice_number,
    status,
    priority,
    origin as channel,
    is_closed,
    cast(null as integer) as contact_count,
    cast(null as decimal(20, 4)) as promised_amount,
    cast(null as {{ dbt.type_string() }}) as promised_currency_code,
    cast(null as date) as promised_date,
    created_at,
    closed_at

from {{ ref('stg_salesforce__cases') }}

where not coalesce(is_deleted, false)
