{#- Raw text to a UTC timestamp without time zone. Sources write '2021-01-18 6:16:26',
    '2018-12-18 18:20:30.829', '2021-01-19', '2023-04-26 23:59:59.000000 UTC' or ISO 8601
    with 'T', seconds and an offset ('Z', '+01', '+0100', '+01:00'), which is applied.
    Anything else, and a day or time that does not exist ('2021-02-30', '24:00'), becomes
    null so the build goes on and the quality checks name the row. Fractions beyond
    microseconds are cut. -#}
{% macro q2c_parse_timestamp(expr) -%}
    {{ return(adapter.dispatch('q2c_parse_timestamp', 'q2c')(expr)) }}
{%- endmacro %}

{#- The accepted shapes: a date, optionally a time after a space or 'T', and after a time
    with seconds optionally an offset. Groups: 1-3 year, month, day; 4-7 hour, minute,
    second, fraction; 8 'Z'; 9-11 offset sign, hours, minutes. -#}
{% macro q2c_timestamp_pattern() -%}
    {%- set day -%} ^(\d{4})-(\d{1,2})-(\d{1,2}) {%- endset -%}
    {%- set time -%} [ T]([01]?\d|2[0-3]):([0-5]\d) {%- endset -%}
    {%- set seconds -%} :([0-5]\d)(?:\.(\d+))? {%- endset -%}
    {%- set offset -%} ([zZ])|([+-])(\d{2})(?::?(\d{2}))?| UTC {%- endset -%}
    {{- day ~ '(?:' ~ time ~ '(?:' ~ seconds ~ '(?:' ~ offset ~ ')?)?)?$' -}}
{%- endmacro %}

{#- DuckDB, and warehouses with try_cast and offset-aware casts: the shape is checked, the
    warehouse parses it (and rejects days that do not exist). -#}
{% macro default__q2c_parse_timestamp(expr) -%}
    {%- set text = 'trim(' ~ expr ~ ')' -%}
    {%- set has_offset -%} (:\d{2}|\.\d+)([zZ]|[+-]\d{2}(:?\d{2})?)$ {%- endset -%}
    case
        when not {{ q2c_regex_matches(text, q2c_timestamp_pattern()) }} then null
        when {{ q2c_regex_matches(text, has_offset) }}
            then cast(
                try_cast(trim({{ expr }}) as timestamptz) at time zone 'UTC'
                as timestamp
            )
        else try_cast(trim({{ expr }}) as timestamp)
    end
{%- endmacro %}

{#- Spark: the day is checked by try_cast, the time of day and the offset are added as
    intervals (the pattern already bounds hours, minutes and seconds). -#}
{% macro spark__q2c_parse_timestamp(expr) -%}
    {%- set text = 'trim(' ~ expr ~ ')' -%}
    {%- set pattern = q2c_timestamp_pattern() -%}
    {%- set part = [] -%}
    {%- for group in range(12) -%}
        {%- do part.append(
            'nullif(regexp_extract(' ~ text ~ ', ' ~ q2c_spark_string(pattern) ~ ', '
            ~ group ~ "), '')"
        ) -%}
    {%- endfor -%}
    case
        when {{ q2c_regex_matches(text, pattern) }}
            then cast(
                try_cast(concat({{ part[1] }}, '-', {{ part[2] }}, '-', {{ part[3] }}) as date)
                as timestamp
            )
            + make_interval(
                0, 0, 0, 0, coalesce(cast({{ part[4] }} as integer), 0),
                coalesce(cast({{ part[5] }} as integer), 0),
                cast(
                    concat(coalesce({{ part[6] }}, '0'), '.',
                           substr(concat(coalesce({{ part[7] }}, ''), '000000'), 1, 6))
                    as decimal(8, 6)
                )
            )
            - case
                when {{ part[9] }} is not null
                    then make_interval(
                        0, 0, 0, 0, cast(concat({{ part[9] }}, {{ part[10] }}) as integer),
                        cast(concat({{ part[9] }}, coalesce({{ part[11] }}, '0')) as integer),
                        0
                    )
                else make_interval(0, 0, 0, 0, 0, 0, 0)
            end
    end
{%- endmacro %}

{#- Postgres has no try_cast: the parts are taken apart once (a scalar subquery), each is
    range-checked, and the timestamp is built from them. -#}
{% macro postgres__q2c_parse_timestamp(expr) -%}
    (
        select
            case
                when {{ q2c_pg_valid_date('p.m') }}
                    then make_timestamp(
                        cast(p.m[1] as integer), cast(p.m[2] as integer),
                        cast(p.m[3] as integer), coalesce(cast(p.m[4] as integer), 0),
                        coalesce(cast(p.m[5] as integer), 0),
                        cast(
                            coalesce(p.m[6], '0') || '.'
                            || left(coalesce(p.m[7], '') || '000000', 6) as double precision
                        )
                    )
                    - case
                        when p.m[9] is not null
                            then cast(p.m[9] || '1' as integer) * make_interval(
                                hours => cast(p.m[10] as integer),
                                mins => coalesce(cast(p.m[11] as integer), 0)
                            )
                        else interval '0 seconds'
                    end
            end
        from (
            select regexp_match(trim({{ expr }}), '{{ q2c_timestamp_pattern() }}') as m
        ) as p
    )
{%- endmacro %}

{#- Postgres: whether the year, month and day in elements 1-3 of the text array `parts`
    make a real date (make_date would stop the build otherwise). Cases, not `and`, so the
    checks run in order. -#}
{% macro q2c_pg_valid_date(parts) -%}
    case
        when {{ parts }} is null then false
        when cast({{ parts }}[1] as integer) < 1 then false
        when cast({{ parts }}[2] as integer) not between 1 and 12 then false
        else cast({{ parts }}[3] as integer) between 1 and extract(day from
            make_date(cast({{ parts }}[1] as integer), cast({{ parts }}[2] as integer), 1)
            + interval '1 month' - interval '1 day'
        )
    end
{%- endmacro %}

{#- Raw text to a date, as written: an issue or due date is a calendar date in the seller's
    time zone, so '2026-01-11T00:30:00+01:00' is the 11th, never shifted to UTC's 10th. -#}
{% macro q2c_parse_date(expr) -%}
    {{ return(adapter.dispatch('q2c_parse_date', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_parse_date(expr) -%}
    try_cast(regexp_extract(trim({{ expr }}), '^(\d{4}-\d{1,2}-\d{1,2})', 1) as date)
{%- endmacro %}

{% macro spark__q2c_parse_date(expr) -%}
    try_cast({{ q2c_regex_extract('trim(' ~ expr ~ ')', '^(\\d{4}-\\d{1,2}-\\d{1,2})') }} as date)
{%- endmacro %}

{% macro postgres__q2c_parse_date(expr) -%}
    (
        select
            case
                when {{ q2c_pg_valid_date('p.m') }}
                    then make_date(
                        cast(p.m[1] as integer), cast(p.m[2] as integer),
                        cast(p.m[3] as integer)
                    )
            end
        from (
            select regexp_match(trim({{ expr }}), '^(\d{4})-(\d{1,2})-(\d{1,2})') as m
        ) as p
    )
{%- endmacro %}
