{#- Regular expressions the same way on every warehouse. DuckDB speaks RE2, Postgres its own
    ARE dialect, and they name their functions differently; write patterns in the part both
    share: \d, [...] with ASCII ranges or \xNN escapes, anchors, {m,n}, (?:...). Avoid \w,
    \s and [[:punct:]]-style classes: on Postgres they follow the database's locale and
    also match non-ASCII letters, spaces and punctuation, where RE2 matches ASCII only. -#}

{#- True when `pattern` matches somewhere in `expr` (anchor it with ^ and $ to test all of
    it); null when `expr` is null. -#}
{% macro q2c_regex_matches(expr, pattern) -%}
    {{ return(adapter.dispatch('q2c_regex_matches', 'q2c')(expr, pattern)) }}
{%- endmacro %}

{% macro default__q2c_regex_matches(expr, pattern) -%}
    regexp_like({{ expr }}, '{{ pattern }}')
{%- endmacro %}

{% macro duckdb__q2c_regex_matches(expr, pattern) -%}
    regexp_matches({{ expr }}, '{{ pattern }}')
{%- endmacro %}

{% macro postgres__q2c_regex_matches(expr, pattern) -%}
    ({{ expr }} ~ '{{ pattern }}')
{%- endmacro %}

{#- True when `pattern` matches all of `expr`. -#}
{% macro q2c_regex_full_match(expr, pattern) -%}
    {{ return(adapter.dispatch('q2c_regex_full_match', 'q2c')(expr, pattern)) }}
{%- endmacro %}

{% macro default__q2c_regex_full_match(expr, pattern) -%}
    regexp_like({{ expr }}, '^(?:{{ pattern }})$')
{%- endmacro %}

{% macro duckdb__q2c_regex_full_match(expr, pattern) -%}
    regexp_full_match({{ expr }}, '{{ pattern }}')
{%- endmacro %}

{% macro postgres__q2c_regex_full_match(expr, pattern) -%}
    ({{ expr }} ~ '^(?:{{ pattern }})$')
{%- endmacro %}

{#- ASCII punctuation and white space (tab to carriage return, space), as a bracket
    expression both dialects read alike; [[:punct:][:space:]] would not. -#}
{% macro q2c_ascii_punct_space() -%}
    [\x09-\x0D\x20-\x2F\x3A-\x40\x5B-\x60\x7B-\x7E]
{%- endmacro %}
