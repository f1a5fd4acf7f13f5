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

{#- Raw text to a date; a timestamp text keeps only its date part. -#}
{% macro q2c_parse_date(expr) -%}
    cast({{ q2c_parse_timestamp(expr) }} as date)
{%- endmacro %}
