{#- Units of the reporting currency one unit of `currency` is worth for one document: 1 in
    the reporting currency, else the rate the ERP recorded on the document when the ERP's
    home currency is the reporting currency, else the day's rate from int_fx_rates_daily.
    Null when no rate is known: an amount is never converted with a guessed rate. -#}
{% macro q2c_reporting_rate(currency, document_rate, table_rate) -%}
    {{ return(adapter.dispatch('q2c_reporting_rate', 'q2c')(
        currency, document_rate, table_rate
    )) }}
{%- endmacro %}

{% macro default__q2c_reporting_rate(currency, document_rate, table_rate) -%}
    case
        when {{ currency }} = '{{ var("reporting_currency") }}' then cast(1 as decimal(20, 10))
        {%- if var("erp_home_currency") == var("reporting_currency") %}
        when {{ document_rate }} is not null then {{ document_rate }}
        {%- endif %}
        else {{ table_rate }}
    end
{%- endmacro %}
