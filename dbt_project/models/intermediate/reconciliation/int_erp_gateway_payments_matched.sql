{#- The ERP's card and gateway payments, each with the gateway charge it records
    (int_gateway_charge_erp_matches, where q2c decides which ERP payment records which
    charge). A payment that records no charge is still a gateway payment when its
    reference starts with a gateway id prefix (var reconciliation_gateway_reference_prefixes)
    or its payment method is a gateway one (var reconciliation_gateway_payment_methods):
    those are what the gateway never captured. match_rank numbers the ERP payments of one
    charge by date; a second one records the charge twice. Payments Stripe itself keeps
    (source_system 'stripe') are the gateway's, not the ERP's, and with Stripe off there is
    nothing to match, so the model is empty. -#}
{%- set prefixes = var('reconciliation_gateway_reference_prefixes', ['ch_', 'py_', 'pi_']) -%}
{%- set methods = var('reconciliation_gateway_payment_methods', ['stripe']) -%}
{%- if prefixes is string or methods is string -%}
    {{ exceptions.raise_compiler_error(
        "vars reconciliation_gateway_reference_prefixes and "
        ~ "reconciliation_gateway_payment_methods must be lists, e.g. ['ch_', 'pi_']"
    ) }}
{%- endif -%}
{%- set stripe_enabled = var('q2c_stripe_enabled', false) -%}

with

payments as (

    select * from {{ ref('fct_payments') }}

),

charge_matches as (

    select * from {{ ref('int_gateway_charge_erp_matches') }}

),

allocations as (

    select * from {{ ref('fct_payment_allocations') }}

),

invoices as (

    select * from {{ ref('fct_invoices') }}

),

erp_payments as (

    select
        payment_key,
        source_system,
        payment_id,
        account_key,
        currency,
        amount,
        payment_date,
        payment_method,
        reference_number,
        upper(trim(reference_number)) as reference_key,
        lower(trim(payment_method)) as payment_method_key

    from payments

    where source_system <> 'stripe'

),

gateway_payments as (

    select
        erp_payments.*,
        charge_matches.charge_id,
        charge_matches.match_rank,
        charge_matches.first_payment_id

    from erp_payments

    left join charge_matches
        on erp_payments.payment_key = charge_matches.payment_key

    where {{ 'true' if stripe_enabled else 'false' }}
        and (
            charge_matches.charge_id is not null
            {%- for prefix in prefixes %}
            or substring(lower(erp_payments.reference_key), 1, {{ prefix | length }})
                = '{{ prefix | lower }}'
            {%- endfor %}
            {%- if methods %}
            or erp_payments.payment_method_key in (
                {%- for method in methods -%}
                '{{ method | string | trim | lower }}'{{ ', ' if not loop.last }}
                {%- endfor -%}
            )
            {%- endif %}
        )

),

{#- The invoice a payment pays, for the exception row: the one it applies most to. -#}
paid_invoices as (

    select
        allocations.payment_key,
        invoices.invoice_key,
        invoices.invoice_id,
        invoices.invoice_number,
        row_number() over (
            partition by allocations.payment_key
            order by allocations.amount desc, invoices.invoice_number
        ) as invoice_order

    from allocations

    inner join invoices
        on allocations.invoice_key = invoices.invoice_key

    where allocations.allocation_type = 'payment'

),

final as (

    select
        gateway_payments.payment_key,
        gateway_payments.source_system,
        gateway_payments.payment_id,
        gateway_payments.account_key,
        gateway_payments.currency,
        gateway_payments.amount,
        gateway_payments.payment_date,
        gateway_payments.payment_method,
        gateway_payments.reference_number,
        paid_invoices.invoice_key,
        paid_invoices.invoice_id,
        paid_invoices.invoice_number,
        gateway_payments.charge_id,
        cast(gateway_payments.match_rank as integer) as match_rank,
        gateway_payments.first_payment_id

    from gateway_payments

    left join paid_invoices
        on gateway_payments.payment_key = paid_invoices.payment_key
        and paid_invoices.invoice_order = 1

)

select * from final
