{#- What the gateway took per charge, in the charge's currency: every Stripe charge that
    moved money (int_stripe__charges_succeeded) with its refunds and lost disputes
    (int_stripe__erp_payment_allocations keeps the ones that moved money) and the payout
    that settled it. gateway_amount is the amount the ERP should book for the charge:
    the captured amount, less the gateway fee when var reconciliation_erp_payment_basis is
    'net_of_fees' (an ERP that books what reaches the bank). With Stripe off there is no
    gateway to reconcile with and the model is empty. -#}
{%- set basis = var('reconciliation_erp_payment_basis', 'gross') | string | trim | lower -%}
{%- if basis not in ['gross', 'net_of_fees'] -%}
    {{ exceptions.raise_compiler_error(
        "var reconciliation_erp_payment_basis must be 'gross' (the ERP books the charged "
        ~ "amount) or 'net_of_fees' (the amount less the gateway fee); got '" ~ basis ~ "'"
    ) }}
{%- endif -%}

{%- if var('q2c_stripe_enabled', false) %}

with

charges as (

    select * from {{ ref('int_stripe__charges_succeeded') }}

),

charge_movements as (

    select * from {{ ref('int_stripe__erp_payment_allocations') }}

),

gateway_transactions as (

    select * from {{ ref('fct_gateway_transactions') }}

),

returned as (

    select
        payment_id as charge_id,
        sum(
            case when allocation_kind = 'refund' then -amount else 0 end
        ) as refunded_amount,
        sum(
            case when allocation_kind = 'chargeback' then -amount else 0 end
        ) as charged_back_amount

    from charge_movements

    where allocation_kind in ('refund', 'chargeback')

    group by payment_id

),

final as (

    select
        charges.charge_id,
        {{ q2c_surrogate_key(["'stripe'", 'charges.charge_id']) }} as payment_key,
        charges.payment_intent_id,
        charges.reference_number,
        charges.customer_id,
        charges.invoice_id,
        charges.invoice_number,
        upper(trim(charges.invoice_number)) as invoice_number_key,
        charges.currency_code as currency,
        cast(charges.amount as decimal(20, 4)) as captured_amount,
        cast(coalesce(charges.fee_amount, 0) as decimal(20, 4)) as fee_amount,
        cast(coalesce(returned.refunded_amount, 0) as decimal(20, 4)) as refunded_amount,
        cast(coalesce(returned.charged_back_amount, 0) as decimal(20, 4))
            as charged_back_amount,
        cast(
            charges.amount
            - coalesce(returned.refunded_amount, 0)
            - coalesce(returned.charged_back_amount, 0)
            as decimal(20, 4)
        ) as net_collected_amount,
        cast(
            charges.amount
            {%- if basis == 'net_of_fees' %} - coalesce(charges.fee_amount, 0){% endif %}
            as decimal(20, 4)
        ) as gateway_amount,
        gateway_transactions.payout_id,
        charges.payment_date,
        charges.created_at

    from charges

    left join returned
        on charges.charge_id = returned.charge_id

    left join gateway_transactions
        on charges.balance_transaction_id = gateway_transactions.source_id

)

select * from final

{%- else %}

select
    cast(null as {{ dbt.type_string() }}) as charge_id,
    cast(null as {{ dbt.type_string() }}) as payment_key,
    cast(null as {{ dbt.type_string() }}) as payment_intent_id,
    cast(null as {{ dbt.type_string() }}) as reference_number,
    cast(null as {{ dbt.type_string() }}) as customer_id,
    cast(null as {{ dbt.type_string() }}) as invoice_id,
    cast(null as {{ dbt.type_string() }}) as invoice_number,
    cast(null as {{ dbt.type_string() }}) as invoice_number_key,
    cast(null as {{ dbt.type_string() }}) as currency,
    cast(null as decimal(20, 4)) as captured_amount,
    cast(null as decimal(20, 4)) as fee_amount,
    cast(null as decimal(20, 4)) as refunded_amount,
    cast(null as decimal(20, 4)) as charged_back_amount,
    cast(null as decimal(20, 4)) as net_collected_amount,
    cast(null as decimal(20, 4)) as gateway_amount,
    cast(null as {{ dbt.type_string() }}) as payout_id,
    cast(null as date) as payment_date,
    cast(null as {{ dbt.type_timestamp() }}) as created_at

where 1 = 0

{%- endif %}
