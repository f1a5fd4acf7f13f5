{#- Raw text to a UTC timestamp without time zone. Sources write '2021-01-18 6:16:26',
    '2018-12-18 18:20:30.829', '2021-01-19' or ISO 8601 with an offset; a text that is no
    timestamp becomes null so the build goes on and the quality checks name the row. -#}
{% macro q2c_parse_timestamp(expr) -%}
    {{ return(adapter.dispatch('q2c_parse_timestamp', 'q2c')(expr)) }}
{%- endmacro %}

{#- The default is DuckDB SQL; add `<adapter>__q2c_parse_timestamp` for another warehouse. -#}
{% macro default__q2c_parse_timestamp(expr) -%}
    case
        when regexp_matches(
            trim({{ expr }}),
            '\d:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)$'
        )
            then cast(
                try_cast(trim({{ expr }}) as timestamptz) at time zone 'UTC'
                as timestamp
            )
        else try_cast(trim({{ expr }}) as timestamp)
    end
{%- endmacro %}

{#- Raw text to a date, as written: an issue or due date is a calendar date in the seller's
    time zone, so '2026-01-11T00:30:00+01:00' is the 11th, never shifted to UTC's 10th. -#}
{% macro q2c_parse_date(expr) -%}
    try_cast(regexp_extract(trim({{ expr }}), '^(\d{4}-\d{1,2}-\d{1,2})', 1) as date)
{%- endmacro %}
