{#- The reporting day as a SQL date: var `as_of_date` ('YYYY-MM-DD'), else the day the run
    started (UTC). Checked here so a typo fails at compile time with a clear message. -#}
{% macro q2c_as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none or value | string | trim == '' -%}
        {%- set value = run_started_at.strftime('%Y-%m-%d') -%}
    {%- endif -%}
    {%- set value = value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var as_of_date must be a date 'YYYY-MM-DD', got '" ~ value ~ "'"
        ) }}
    {%- endif -%}
    {{ return(adapter.dispatch('q2c_date_literal', 'q2c')(value)) }}
{%- endmacro %}

{#- A SQL date from text 'YYYY-MM-DD'. -#}
{% macro default__q2c_date_literal(value) -%}
    cast('{{ value }}' as date)
{%- endmacro %}

{#- Whole days from start_date to end_date (positive when end is later). -#}
{% macro q2c_days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('q2c_days_between', 'q2c')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__q2c_days_between(start_date, end_date) -%}
    {{ dbt.datediff(start_date, end_date, 'day') }}
{%- endmacro %}

{#- One row per month (column month_start, a date) from the month of start_date to the
    month of end_date, both SQL date expressions. -#}
{% macro q2c_month_spine(start_date, end_date) -%}
    {{ return(adapter.dispatch('q2c_month_spine', 'q2c')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__q2c_month_spine(start_date, end_date) -%}
    select cast(month_ts as date) as month_start
    from generate_series(
        cast({{ dbt.date_trunc('month', start_date) }} as timestamp),
        cast({{ dbt.date_trunc('month', end_date) }} as timestamp),
        interval '1 month'
    ) as spine (month_ts)
{%- endmacro %}

{#- Spark has no generate_series; sequence() steps through dates by a month. -#}
{% macro spark__q2c_month_spine(start_date, end_date) -%}
    select explode(sequence(
        cast({{ dbt.date_trunc('month', start_date) }} as date),
        cast({{ dbt.date_trunc('month', end_date) }} as date),
        interval 1 month
    )) as month_start
{%- endmacro %}


{#- A date `days` days after `date_expr`, as a date on every warehouse (adding an interval
    gives a timestamp on DuckDB and Postgres). -#}
{% macro q2c_add_days(date_expr, days) -%}
    cast({{ dbt.dateadd('day', days, date_expr) }} as date)
{%- endmacro %}
