{#- The ERPs whose home currency is the reporting currency: their documents' own exchange
    rates convert straight into it (var erp_home_currencies). -#}
{% macro q2c_rate_sources() -%}
    {%- set homes = var('erp_home_currencies', {}) -%}
    {%- set found = [] -%}
    {%- set reporting = var('reporting_currency') | upper -%}
    {%- for source, currency in homes.items() if currency | upper == reporting -%}
        {%- do found.append(source) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}


{#- The home currency of the ERP in `source_system` (var erp_home_currencies), else null. -#}
{% macro q2c_home_currency(source_system) -%}
    {%- set homes = var('erp_home_currencies', {}) -%}
    {%- if homes %}
    case {{ source_system }}
        {%- for source, currency in homes.items() %}
        when '{{ source }}' then '{{ currency | upper }}'
        {%- endfor %}
    end
    {%- else -%}
    cast(null as {{ dbt.type_string() }})
    {%- endif -%}
{%- endmacro %}


{#- Units of the reporting currency one unit of `currency` is worth for one document: 1 in
    the reporting currency; the rate the ERP recorded on the document when that ERP's home
    currency is the reporting currency; else the day's rate from int_fx_rates_daily (which
    expires after var fx_rate_max_age_days). Null when no rate is known: an amount is never
    converted with a guessed rate. -#}
{% macro q2c_reporting_rate(currency, document_rate, table_rate, source_system) -%}
    {%- set rate_sources = q2c_rate_sources() -%}
    case
        when {{ currency }} = '{{ var("reporting_currency") }}' then cast(1 as decimal(20, 10))
        {%- if rate_sources %}
        when {{ source_system }} in ('{{ rate_sources | join("', '") }}')
            and {{ document_rate }} is not null
            then {{ document_rate }}
        {%- endif %}
        else {{ table_rate }}
    end
{%- endmacro %}
