{#- A stable key from the source system and source id(s): md5 of the parts joined with '|',
    null parts as '' so the key is never null. Same idea as dbt_utils, without the package. -#}
{% macro q2c_surrogate_key(parts) -%}
    {{ return(adapter.dispatch('q2c_surrogate_key', 'q2c')(parts)) }}
{%- endmacro %}

{% macro default__q2c_surrogate_key(parts) -%}
    md5(
        {%- for part in parts %}
        coalesce(cast({{ part }} as {{ dbt.type_string() }}), '')
        {%- if not loop.last %} || '|' ||{% endif %}
        {%- endfor %}
    )
{%- endmacro %}
