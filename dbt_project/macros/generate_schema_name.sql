{#- Schemas are exactly the layer names (staging, intermediate, core, kpi), not dbt's
    default `<target schema>_<custom schema>`, so BI tools and q2c read fixed names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
