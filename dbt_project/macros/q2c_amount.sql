{#- Raw text to decimal(20,4), the type of every money column. Connectors write plain
    decimals ('1234.50'); anything else, such as '1,234.50' or a decimal comma '39,00', is
    ambiguous and becomes null, so the quality rules hold the invoice instead of printing a
    rescaled amount. -#}
{% macro q2c_amount(expr) -%}
    {{ return(adapter.dispatch('q2c_amount', 'q2c')(expr, 20, 4)) }}
{%- endmacro %}

{#- Raw text to a decimal of another scale: quantities, unit prices, rates, percentages. -#}
{% macro q2c_decimal(expr, precision, scale) -%}
    {{ return(adapter.dispatch('q2c_amount', 'q2c')(expr, precision, scale)) }}
{%- endmacro %}

{% macro default__q2c_amount(expr, precision, scale) -%}
    case
        when regexp_full_match(trim({{ expr }}), '[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?')
            then try_cast(trim({{ expr }}) as decimal({{ precision }}, {{ scale }}))
    end
{%- endmacro %}

{#- Raw text to an integer (line index, term days); null when it is no whole number. -#}
{% macro q2c_int(expr) -%}
    {{ return(adapter.dispatch('q2c_int', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_int(expr) -%}
    try_cast(trim({{ expr }}) as integer)
{%- endmacro %}
