{#- Raw text to decimal(20,4), the type of every money column. Connectors write plain
    decimals ('1234.50'); anything else, such as '1,234.50' or a decimal comma '39,00', is
    ambiguous and becomes null, so the quality rules hold the invoice instead of printing a
    rescaled amount. A value too large for the type is null too. Digits beyond the scale
    round half away from zero, on every warehouse. -#}
{% macro q2c_amount(expr) -%}
    {{ return(adapter.dispatch('q2c_amount', 'q2c')(expr, 20, 4)) }}
{%- endmacro %}

{#- Raw text to a decimal of another scale: quantities, unit prices, rates, percentages. -#}
{% macro q2c_decimal(expr, precision, scale) -%}
    {{ return(adapter.dispatch('q2c_amount', 'q2c')(expr, precision, scale)) }}
{%- endmacro %}

{#- What counts as a plain decimal: sign, digits, point, exponent. -#}
{% macro q2c_decimal_pattern() -%}
    [+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?
{%- endmacro %}

{#- Warehouses with try_cast (Snowflake, Databricks, DuckDB) return null on overflow. -#}
{% macro default__q2c_amount(expr, precision, scale) -%}
    case
        when {{ q2c_regex_full_match('trim(' ~ expr ~ ')', q2c_decimal_pattern()) }}
            then try_cast(trim({{ expr }}) as decimal({{ precision }}, {{ scale }}))
    end
{%- endmacro %}

{#- Postgres has no try_cast and a failed cast stops the build, so the value is checked
    first: a plain decimal (exponent below 10000, which numeric can hold) that still fits
    the type once rounded. -#}
{% macro postgres__q2c_amount(expr, precision, scale) -%}
    case
        when trim({{ expr }}) ~ '^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?0*\d{1,4})?$'
            then case
                when abs(round(cast(trim({{ expr }}) as numeric), {{ scale }}))
                    < 1e{{ precision - scale }}
                    then cast(trim({{ expr }}) as decimal({{ precision }}, {{ scale }}))
            end
    end
{%- endmacro %}

{#- Raw text to an integer (line index, term days): a whole number, written with or without
    a zero fraction ('30', '30.0'); null for anything else ('12.5', '0x10', '1_000') and for a
    number outside the integer range. -#}
{% macro q2c_int(expr) -%}
    {{ return(adapter.dispatch('q2c_int', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_int(expr) -%}
    {%- set whole_number -%} [+-]?\d+(\.0*)? {%- endset -%}
    case
        when {{ q2c_regex_full_match('trim(' ~ expr ~ ')', whole_number) }}
            then try_cast(trim({{ expr }}) as integer)
    end
{%- endmacro %}

{#- Spark's try_cast refuses '30.0' as an integer: the whole part is cast. -#}
{% macro spark__q2c_int(expr) -%}
    {%- set whole_number -%} [+-]?\d+(\.0*)? {%- endset -%}
    case
        when {{ q2c_regex_full_match('trim(' ~ expr ~ ')', whole_number) }}
            then try_cast({{ q2c_regex_extract('trim(' ~ expr ~ ')', '^([+-]?\\d+)') }} as integer)
    end
{%- endmacro %}

{% macro postgres__q2c_int(expr) -%}
    case
        when trim({{ expr }}) ~ '^[+-]?\d+(\.0*)?$'
            then case
                when cast(trim({{ expr }}) as numeric) between -2147483648 and 2147483647
                    then cast(cast(trim({{ expr }}) as numeric) as integer)
            end
    end
{%- endmacro %}

{#- numerator / denominator as a decimal quotient with digits to spare, for a ratio the
    model then casts (rounds once) to its column's type. Integers never divide as integers.
    A zero denominator is for the caller to turn into null (nullif). -#}
{% macro q2c_ratio(numerator, denominator) -%}
    {{ return(adapter.dispatch('q2c_ratio', 'q2c')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__q2c_ratio(numerator, denominator) -%}
    (1.0 * ({{ numerator }}) / ({{ denominator }}))
{%- endmacro %}

{#- Spark keeps only 6 decimals of a quotient of wide decimals, and the cast then rounds a
    second time (55.38274997 to 55.382750 to 55.3828); operands with 20 integer digits and
    8 decimals leave it 10. -#}
{% macro spark__q2c_ratio(numerator, denominator) -%}
    (cast({{ numerator }} as decimal(28, 8)) / cast({{ denominator }} as decimal(28, 8)))
{%- endmacro %}
