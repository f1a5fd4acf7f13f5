{#- An ISO 3166-1 alpha-2 country code from what a source wrote: a known alias (a name such
    as 'Germany', an alpha-3 code such as 'USA', or 'UK') through the country_aliases seed
    joined as `alias_relation`, else the text itself when it is two letters. -#}
{% macro q2c_country_code(expr, alias_relation) -%}
    {{ return(adapter.dispatch('q2c_country_code', 'q2c')(expr, alias_relation)) }}
{%- endmacro %}

{% macro default__q2c_country_code(expr, alias_relation) -%}
    coalesce(
        {{ alias_relation }}.country_code,
        case
            when {{ q2c_regex_full_match('upper(trim(' ~ expr ~ '))', '[A-Z]{2}') }}
                then upper(trim({{ expr }}))
        end
    )
{%- endmacro %}
