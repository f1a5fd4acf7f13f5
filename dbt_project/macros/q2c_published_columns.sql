{#- The select of a reporting view: every column the model's yml declares, in that order,
    cast to its declared data_type, from `relation` (the mart it publishes). The yml is the
    published contract BI tools rely on; a mart that drops or renames a declared column
    fails the reporting build instead of changing what BI reads, and a new mart column
    stays out until it is declared. -#}
{% macro q2c_published_columns(relation) -%}
    {{ return(adapter.dispatch('q2c_published_columns', 'q2c')(relation)) }}
{%- endmacro %}

{% macro default__q2c_published_columns(relation) -%}
    {%- set columns = model.columns.values() | list -%}
    {%- if execute and not columns -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ " declares no columns; a reporting view publishes exactly the "
            ~ "columns its yml lists, each with a data_type"
        ) }}
    {%- endif %}
    select
        {%- for column in columns %}
        {%- if not column.data_type %}
            {{- exceptions.raise_compiler_error(
                model.name ~ "." ~ column.name ~ " has no data_type in the yml"
            ) }}
        {%- endif %}
        cast({{ adapter.quote(column.name) }} as {{ column.data_type }}) as {{
            adapter.quote(column.name) }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ relation }}
{%- endmacro %}
