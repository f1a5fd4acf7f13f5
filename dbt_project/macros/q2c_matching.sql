{#- Helpers for matching CRM accounts to ERP customers (int_accounts_crosswalk). Each one
    dispatches, so a warehouse can bring its own; the regular expressions go through
    q2c_regex_replace, which speaks each warehouse's dialect. -#}

{#- A company name for matching: lower case, ASCII punctuation and white space to single
    spaces, trailing legal forms (Inc, LLC, Ltd, GmbH, SA, AG, BV, ...) removed, so
    "Müller Widgets, GmbH & Co. KG" and "Muller widgets" differ only by the umlaut. Empty
    becomes null. Non-ASCII punctuation (’, –) is kept on every warehouse alike. -#}
{% macro q2c_normalize_name(expr) -%}
    {{ return(adapter.dispatch('q2c_normalize_name', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_normalize_name(expr) -%}
    {%- set spaced = q2c_regex_replace(
        'lower(' ~ expr ~ ')', q2c_ascii_punct_space() ~ '+', ' ') -%}
    nullif(
        trim({{ q2c_regex_replace(
            'trim(' ~ spaced ~ ')',
            '( (' ~ q2c_legal_forms() | join('|') ~ '))+$',
            ''
        ) }}),
        ''
    )
{%- endmacro %}

{% macro q2c_legal_forms() -%}
    {{ return([
        'inc', 'incorporated', 'llc', 'llp', 'lp', 'ltd', 'limited', 'plc', 'corp',
        'corporation', 'co', 'company', 'gmbh', 'mbh', 'kg', 'ohg', 'ag', 'se', 'ug',
        'sa', 'sas', 'sarl', 'srl', 'spa', 'bv', 'nv', 'ab', 'as', 'asa', 'oy', 'oyj',
        'aps', 'kk', 'pty', 'pte', 'sl', 'sau', 'wll', 'kscc', 'kscp'
    ]) }}
{%- endmacro %}

{#- The registrable part of a web address: 'https://www.acme.de/about' -> 'acme.de'. -#}
{% macro q2c_web_domain(expr) -%}
    {{ return(adapter.dispatch('q2c_web_domain', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_web_domain(expr) -%}
    {%- set without_scheme = q2c_regex_replace(
        'lower(trim(' ~ expr ~ '))', '^[a-z][a-z0-9+.-]*://', '') -%}
    {%- set without_www = q2c_regex_replace(without_scheme, '^www\\.', '') -%}
    nullif({{ q2c_regex_replace(without_www, '[/:?#].*$', '') }}, '')
{%- endmacro %}

{#- The domain of an e-mail address: 'billing@acme.de' -> 'acme.de'. -#}
{% macro q2c_email_domain(expr) -%}
    {{ return(adapter.dispatch('q2c_email_domain', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_email_domain(expr) -%}
    case
        when {{ expr }} like '%@%'
            then nullif({{ q2c_regex_replace('lower(trim(' ~ expr ~ '))', '^.*@', '') }}, '')
    end
{%- endmacro %}

{#- A tax id for matching: upper case, without spaces, dots, dashes and slashes. -#}
{% macro q2c_normalize_tax_id(expr) -%}
    {{ return(adapter.dispatch('q2c_normalize_tax_id', 'q2c')(expr)) }}
{%- endmacro %}

{% macro default__q2c_normalize_tax_id(expr) -%}
    nullif({{ q2c_regex_replace('upper(trim(' ~ expr ~ '))', '[^A-Z0-9]', '') }}, '')
{%- endmacro %}
