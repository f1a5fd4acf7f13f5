{#- The ERP's card and gateway payments, each with the gateway charge it records. An ERP
    payment records a charge when its reference is the charge id, the charge's payment
    intent or its receipt number (compared without case; the charge id wins over the
    others). A payment that matches no charge is still a gateway payment when its
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

charges as (

    select * from {{ ref('int_gateway_charges_netted') }}

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

charge_references as (

    select upper(charge_id) as reference_key, charge_id, 1 as match_order
    from charges

    union all

    select upper(payment_intent_id) as reference_key, charge_id, 2 as match_order
    from charges
    where payment_intent_id is not null

    union all

    select upper(reference_number) as reference_key, charge_id, 3 as match_order
    from charges
    where reference_number is not null

),

ranked_matches as (

    select
        erp_payments.payment_key,
        charge_references.charge_id,
        row_number() over (
            partition by erp_payments.payment_key
            order by charge_references.match_order, charge_references.charge_id
        ) as match_preference

    from erp_payments

    inner join charge_references
        on erp_payments.reference_key = charge_references.reference_key

),

best_matches as (

    select payment_key, charge_id
    from ranked_matches
    where match_preference = 1

),

gateway_payments as (

    select
        erp_payments.*,
        best_matches.charge_id

    from erp_payments

    left join best_matches
        on erp_payments.payment_key = best_matches.payment_key

    where {{ 'true' if stripe_enabled else 'false' }}
        and (
            best_matches.charge_id is not null
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

ranked as (

    select
        gateway_payments.*,
        case
            when gateway_payments.charge_id is not null
                then row_number() over (
                    partition by gateway_payments.charge_id
                    order by gateway_payments.payment_date, gateway_payments.payment_id
                )
        end as match_rank,
        case
            when gateway_payments.charge_id is not null
                then first_value(gateway_payments.payment_id) over (
                    partition by gateway_payments.charge_id
                    order by gateway_payments.payment_date, gateway_payments.payment_id
                    rows between unbounded preceding and unbounded following
                )
        end as first_payment_id

    from gateway_payments

),

final as (

    select
        ranked.payment_key,
        ranked.source_system,
        ranked.payment_id,
        ranked.account_key,
        ranked.currency,
        ranked.amount,
        ranked.payment_date,
        ranked.payment_method,
        ranked.reference_number,
        paid_invoices.invoice_key,
        paid_invoices.invoice_id,
        paid_invoices.invoice_number,
        ranked.charge_id,
        cast(ranked.match_rank as integer) as match_rank,
        ranked.first_payment_id

    from ranked

    left join paid_invoices
        on ranked.payment_key = paid_invoices.payment_key
        and paid_invoices.invoice_order = 1

)

select * from final
