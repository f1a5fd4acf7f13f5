{#- `expr` without the characters of `characters` at either end ('_' trims underscores). -#}
{% macro q2c_trim_chars(expr, characters) -%}
    {{ return(adapter.dispatch('q2c_trim_chars', 'q2c')(expr, characters)) }}
{%- endmacro %}

{% macro default__q2c_trim_chars(expr, characters) -%}
    trim({{ expr }}, '{{ characters }}')
{%- endmacro %}

{#- Spark's two-argument trim is deprecated with its arguments the other way round. -#}
{% macro spark__q2c_trim_chars(expr, characters) -%}
    trim(both '{{ characters }}' from {{ expr }})
{%- endmacro %}


{#- The values of `expr` in a group, sorted, joined by `separator` (plain text). -#}
{% macro q2c_sorted_list(expr, separator) -%}
    {{ return(adapter.dispatch('q2c_sorted_list', 'q2c')(expr, separator)) }}
{%- endmacro %}

{% macro default__q2c_sorted_list(expr, separator) -%}
    {{ dbt.listagg(expr, "'" ~ separator ~ "'", 'order by ' ~ expr) }}
{%- endmacro %}

{#- Spark's listagg keeps no order: the collected values are sorted before joining. A
    group without values is null, as elsewhere. -#}
{% macro spark__q2c_sorted_list(expr, separator) -%}
    case
        when count({{ expr }}) > 0
            then array_join(array_sort(collect_list({{ expr }})), '{{ separator }}')
    end
{%- endmacro %}
