{#- Fails for every combination of the given columns that occurs more than once: the grain
    test for models keyed by more than one column. A name written in double quotes ('"index"',
    a reserved word) is quoted the warehouse's way (backticks on Spark). -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

{%- set columns = [] -%}
{%- for column in combination_of_columns -%}
    {%- if column.startswith('"') and column.endswith('"') -%}
        {%- do columns.append(adapter.quote(column[1:-1])) -%}
    {%- else -%}
        {%- do columns.append(column) -%}
    {%- endif -%}
{%- endfor %}

select
    {{ columns | join(', ') }},
    count(*) as occurrences

from {{ model }}

group by {{ columns | join(', ') }}

having count(*) > 1

{% endtest %}
