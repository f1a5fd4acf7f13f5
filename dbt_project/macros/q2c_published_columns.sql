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
        cast({{ adapter.quote(column.name) }} as {{ q2c_column_type(column.data_type) }}) as {{
            adapter.quote(column.name) }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ relation }}
{%- endmacro %}


{#- A column type as the yml declares it (Postgres' names: text, numeric), in the
    warehouse's own words. -#}
{% macro q2c_column_type(data_type) -%}
    {{ return(adapter.dispatch('q2c_column_type', 'q2c')(data_type)) }}
{%- endmacro %}

{% macro default__q2c_column_type(data_type) -%}
    {{ return(data_type) }}
{%- endmacro %}

{#- Spark has no text and wants a length on varchar: both are its string. -#}
{% macro spark__q2c_column_type(data_type) -%}
    {%- set name = data_type | trim | lower -%}
    {%- if name in ('text', 'varchar', 'character varying') -%}
        {{ return(dbt.type_string()) }}
    {%- elif name.startswith('numeric(') -%}
        {{ return('decimal' ~ name[7:]) }}
    {%- endif -%}
    {{ return(data_type) }}
{%- endmacro %}

{#- dbt checks an enforced contract on Spark by casting null to each declared type; the
    declared types are translated first, as the reporting views translate them. -#}
{% macro spark__get_empty_schema_sql(columns) -%}
    {%- set translated = {} -%}
    {%- for name in columns -%}
        {%- set column = columns[name] -%}
        {%- set copy = {'name': column['name'], 'quote': column.get('quote')} -%}
        {%- if column['data_type'] -%}
            {%- do copy.update({'data_type': q2c_column_type(column['data_type'])}) -%}
        {%- endif -%}
        {%- do translated.update({name: copy}) -%}
    {%- endfor -%}
    {{ return(dbt.default__get_empty_schema_sql(translated)) }}
{%- endmacro %}
