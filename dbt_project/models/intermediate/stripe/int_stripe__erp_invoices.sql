{#- Stripe invoices of record in the conformed erp_invoices shape: status open, paid or
    uncollectible. Drafts (not yet issued, no number) and void invoices (cancelled, owe
    nothing) are left out, as are deleted and, unless var q2c_stripe_include_test_mode,
    test-mode invoices. The issue date is the day the invoice was finalized (when Stripe
    assigns its number), else the day it was created, both in UTC. -#}
with

invoices as (

    select * from {{ ref('stg_stripe__invoices') }}

),

customers as (

    select * from {{ ref('stg_stripe__customers') }}

),

final as (

    select
        invoices.invoice_id,
        invoices.invoice_number,
        invoices.customer_id,
        cast(null as {{ dbt.type_string() }}) as crm_opportunity_id,
        cast(null as {{ dbt.type_string() }}) as order_id,
        cast(null as {{ dbt.type_string() }}) as po_number,
        invoices.currency_code,
        customers.email as billing_email,
        invoices.description as customer_memo,
        cast(null as {{ dbt.type_string() }}) as email_status,
        cast(null as decimal(20, 10)) as exchange_rate,
        invoices.tax_amount,
        invoices.total_amount,
        invoices.amount_remaining as balance_amount,
        cast(null as decimal(20, 4)) as home_total_amount,
        cast(coalesce(invoices.finalized_at, invoices.created_at) as date) as issue_date,
        cast(invoices.due_at as date) as due_date,
        invoices.created_at,
        coalesce(
            invoices.paid_at,
            invoices.marked_uncollectible_at,
            invoices.finalized_at,
            invoices.created_at
        ) as updated_at

    from invoices

    left join customers
        on invoices.customer_id = customers.customer_id

    where invoices.status in ('open', 'paid', 'uncollectible')
    {%- if not var('q2c_stripe_include_test_mode', false) %}
        and coalesce(invoices.is_livemode, true)
    {%- endif %}

)

select * from final
