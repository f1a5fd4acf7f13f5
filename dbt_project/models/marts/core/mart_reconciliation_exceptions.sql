{#- The nightly reconciliation's exceptions: every difference above the tolerance between
    the ERP, q2c's own balances and the gateway, one row each, from the comparisons in
    models/intermediate/reconciliation. The key is stable from night to night for the
    same finding, so a BI tool can follow an exception until it is resolved. -#}
{%- set comparisons = [
    'int_invoice_balances_compared',
    'int_gateway_charges_compared',
    'int_erp_gateway_payments_compared',
    'int_erp_payment_references_compared',
    'int_payouts_compared',
] -%}
{%- set columns = [
    'reason_code', 'check_name', 'item_id', 'source_system', 'account_key', 'invoice_key',
    'invoice_id', 'invoice_number', 'payment_key', 'payment_id', 'gateway_charge_id',
    'payout_id', 'duplicate_of_id', 'currency', 'compared_currency', 'erp_amount',
    'q2c_amount', 'gateway_amount', 'difference_amount', 'tolerance_amount', 'event_date',
    'what_to_check',
] -%}

with

{% for model in comparisons -%}
{{ model }} as (

    select * from {{ ref(model) }}

),

{% endfor -%}

exceptions as (

    {%- for model in comparisons %}

    select {{ columns | join(', ') }}
    from {{ model }}
    where reason_code is not null
    {%- if not loop.last %}

    union all
    {%- endif %}
    {%- endfor %}

),

final as (

    select
        {{ q2c_surrogate_key(['check_name', 'item_id', 'reason_code']) }} as exception_key,
        reason_code,
        check_name,
        item_id,
        source_system,
        account_key,
        invoice_key,
        invoice_id,
        invoice_number,
        payment_key,
        payment_id,
        gateway_charge_id,
        payout_id,
        duplicate_of_id,
        currency,
        compared_currency,
        erp_amount,
        q2c_amount,
        gateway_amount,
        difference_amount,
        tolerance_amount,
        event_date,
        {{ q2c_as_of_date() }} as detected_on,
        what_to_check

    from exceptions

)

select * from final
