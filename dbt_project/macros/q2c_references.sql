{#- Remittance references compared with invoice numbers the way people write them (cash
    allocation, intermediate/cash). The regular expressions go through q2c_regex_replace,
    which speaks each warehouse's dialect. -#}

{#- A reference or invoice number for matching: upper case, only ASCII letters and digits
    ('inv 1001' and 'INV-1001' are both 'INV1001'). Empty becomes null. -#}
{% macro q2c_normalize_reference(expr) -%}
    {{ return(adapter.dispatch('q2c_normalize_reference', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_normalize_reference(expr) -%}
    nullif({{ q2c_regex_replace('upper(trim(' ~ expr ~ '))', '[^A-Z0-9]', '') }}, '')
{%- endmacro %}

{#- Only the digits of a text ('INV-2024-0042' -> '20240042'). Empty becomes null. -#}
{% macro q2c_digits_only(expr) -%}
    {{ return(adapter.dispatch('q2c_digits_only', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_digits_only(expr) -%}
    nullif({{ q2c_regex_replace(expr, '[^0-9]', '') }}, '')
{%- endmacro %}

{#- True when the normalized `reference` holds the normalized `number` as a whole: a digit
    at either end of the number does not run on into another digit of the reference, so
    'INVOICEA103' holds 'A103' and 'INV1001' holds '1001', but 'PO21001' does not hold
    '1001' and 'INV100' does not hold 'INV10'. Letters may touch letters: normalizing
    removes the spaces between words. Only the first occurrence is tried. -#}
{% macro q2c_reference_holds(reference, number) -%}
    {%- set at = dbt.position(number, reference) -%}
    {%- set after = '(' ~ at ~ ' + ' ~ dbt.length(number) ~ ')' -%}
    (
        {{ at }} > 0
        and (
            {{ at }} = 1
            or not (
                {{ q2c_is_digit('substring(' ~ reference ~ ', ' ~ at ~ ' - 1, 1)') }}
                and {{ q2c_is_digit('substring(' ~ number ~ ', 1, 1)') }}
            )
        )
        and (
            {{ after }} > {{ dbt.length(reference) }}
            or not (
                {{ q2c_is_digit('substring(' ~ reference ~ ', ' ~ after ~ ', 1)') }}
                and {{ q2c_is_digit('substring(' ~ number ~ ', '
                                    ~ dbt.length(number) ~ ', 1)') }}
            )
        )
    )
{%- endmacro %}

{#- True when the one-character text `expr` is an ASCII digit. -#}
{% macro q2c_is_digit(expr) -%}
    ({{ expr }} in ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))
{%- endmacro %}
