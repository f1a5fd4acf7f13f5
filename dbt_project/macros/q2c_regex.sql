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

{% macro spark__q2c_regex_matches(expr, pattern) -%}
    regexp_like({{ expr }}, {{ q2c_spark_string(pattern) }})
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

{#- Java's $ also matches before a final line break; \z is the very end. -#}
{% macro spark__q2c_regex_full_match(expr, pattern) -%}
    regexp_like({{ expr }}, {{ q2c_spark_string('^(?:' ~ pattern ~ ')\\z') }})
{%- endmacro %}

{#- The first capture group of `pattern` in `expr`, or null when it does not match. -#}
{% macro q2c_regex_extract(expr, pattern) -%}
    {{ return(adapter.dispatch('q2c_regex_extract', 'q2c')(expr, pattern)) }}
{%- endmacro %}

{% macro default__q2c_regex_extract(expr, pattern) -%}
    nullif(regexp_extract({{ expr }}, '{{ pattern }}', 1), '')
{%- endmacro %}

{% macro postgres__q2c_regex_extract(expr, pattern) -%}
    nullif(substring({{ expr }} from '{{ pattern }}'), '')
{%- endmacro %}

{% macro spark__q2c_regex_extract(expr, pattern) -%}
    nullif(regexp_extract({{ expr }}, {{ q2c_spark_string(pattern) }}, 1), '')
{%- endmacro %}

{#- `expr` with every match of `pattern` replaced by `replacement` (plain text: no group
    references, no backslash or dollar sign). -#}
{% macro q2c_regex_replace(expr, pattern, replacement) -%}
    {{ return(adapter.dispatch('q2c_regex_replace', 'q2c')(expr, pattern, replacement)) }}
{%- endmacro %}

{% macro default__q2c_regex_replace(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}

{#- Spark replaces every match without a flag. -#}
{% macro spark__q2c_regex_replace(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, {{ q2c_spark_string(pattern) }}, '{{ replacement }}')
{%- endmacro %}

{#- A Spark SQL string literal for `text`: Spark reads backslash escapes inside quotes, so a
    pattern's \d must reach it as \\d. -#}
{% macro q2c_spark_string(text) -%}
    '{{ text | replace('\\', '\\\\') | replace("'", "\\'") }}'
{%- endmacro %}

{#- ASCII punctuation and white space (tab to carriage return, space), as a bracket
    expression both dialects read alike; [[:punct:][:space:]] would not. -#}
{% macro q2c_ascii_punct_space() -%}
    [\x09-\x0D\x20-\x2F\x3A-\x40\x5B-\x60\x7B-\x7E]
{%- endmacro %}
