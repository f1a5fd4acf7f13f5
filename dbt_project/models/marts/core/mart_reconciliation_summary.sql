{#- The nightly reconciliation in figures for BI: per check, outcome and currency, how many
    items were compared and the amounts on each side. Outcome is the reason code of an
    exception, or 'reconciled' for an item that agrees within the tolerance. -#}
{%- set comparisons = [
    'int_invoice_balances_compared',
    'int_gateway_charges_compared',
    'int_erp_gateway_payments_compared',
    'int_erp_payment_references_compared',
    'int_payouts_compared',
] -%}

with

{% for model in comparisons -%}
{{ model }} as (

    select * from {{ ref(model) }}

),

{% endfor -%}

compared as (

    {%- for model in comparisons %}

    select
        check_name,
        coalesce(reason_code, 'reconciled') as outcome,
        currency,
        erp_amount,
        q2c_amount,
        gateway_amount,
        difference_amount

    from {{ model }}
    {%- if not loop.last %}

    union all
    {%- endif %}
    {%- endfor %}

),

final as (

    select
        {{ q2c_as_of_date() }} as detected_on,
        check_name,
        outcome,
        currency,
        count(*) as item_count,
        cast(coalesce(sum(erp_amount), 0) as decimal(20, 4)) as erp_amount,
        cast(coalesce(sum(q2c_amount), 0) as decimal(20, 4)) as q2c_amount,
        cast(coalesce(sum(gateway_amount), 0) as decimal(20, 4)) as gateway_amount,
        cast(coalesce(sum(abs(difference_amount)), 0) as decimal(20, 4))
            as absolute_difference_amount

    from compared

    group by check_name, outcome, currency

)

select * from final
