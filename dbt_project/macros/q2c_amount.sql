{#- Raw text to decimal(20,4), the type of every money column. Thousands separators are
    dropped as q2c.money.to_decimal drops them; a text that is no number becomes null. -#}
{% macro q2c_amount(expr) -%}
    {{ return(adapter.dispatch('q2c_amount', 'q2c')(expr, 20, 4)) }}
{%- endmacro %}

{#- Raw text to a decimal of another scale: quantities, unit prices, rates, percentages. -#}
{% macro q2c_decimal(expr, precision, scale) -%}
    {{ return(adapter.dispatch('q2c_amount', 'q2c')(expr, precision, scale)) }}
{%- endmacro %}

{% macro default__q2c_amount(expr, precision, scale) -%}
    try_cast(
        replace(trim({{ expr }}), ',', '')
        as decimal({{ precision }}, {{ scale }})
    )
{%- endmacro %}

{#- Raw text to an integer (line index, term days); null when it is no whole number. -#}
{% macro q2c_int(expr) -%}
    {{ return(adapter.dispatch('q2c_int', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_int(expr) -%}
    try_cast(trim({{ expr }}) as integer)
{%- endmacro %}
