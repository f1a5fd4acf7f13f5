{#- Raw text to a boolean. Sources write 'true'/'false', 'TRUE'/'FALSE', sometimes 1/0 or
    yes/no; anything else, and empty, is null (unknown), never false. -#}
{% macro q2c_parse_bool(expr) -%}
    {{ return(adapter.dispatch('q2c_parse_bool', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_parse_bool(expr) -%}
    case
        when lower(trim({{ expr }})) in ('true', 't', '1', 'yes', 'y') then true
        when lower(trim({{ expr }})) in ('false', 'f', '0', 'no', 'n') then false
    end
{%- endmacro %}
