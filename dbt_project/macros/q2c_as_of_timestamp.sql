{#- The moment the review marts are computed for: var as_of_timestamp ('YYYY-MM-DD HH:MM:SS',
    UTC; a trailing Z or +00:00 is accepted), else when the dbt run started. Returns the
    text of a timestamp literal; a value that is not such a time stops compilation. -#}
{% macro q2c_as_of_timestamp() %}
    {%- set value = var('as_of_timestamp', none) -%}
    {%- if value is none or value | string | trim == '' -%}
        {%- set value = run_started_at.strftime('%Y-%m-%d %H:%M:%S') -%}
    {%- endif -%}
    {%- set value = modules.re.sub('(Z|[+]00(:?00)?| UTC)$', '',
                                   value | string | trim | replace('T', ' ')) -%}
    {%- if not modules.re.match(
        '^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?$', value
    ) -%}
        {{ exceptions.raise_compiler_error(
            "var as_of_timestamp must be a UTC time 'YYYY-MM-DD HH:MM:SS', got '"
            ~ value ~ "'"
        ) }}
    {%- endif -%}
    {{- return(value) -}}
{% endmacro %}
