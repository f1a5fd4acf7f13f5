{#- How far two amounts may differ before the nightly reconciliation calls it an exception,
    per currency. var reconciliation_tolerance_minor_units counts minor units of each
    currency (ISO 4217: 1 means 0.01 EUR, 1 JPY, 0.001 KWD), so one setting fits every
    currency; var reconciliation_tolerance_by_currency ({EUR: 0.05, JPY: 5}) gives a
    currency its own amount instead. A value that is not a plain non-negative number stops
    compilation, naming the var. -#}
{%- set minor_units = var('reconciliation_tolerance_minor_units', 0) | string | trim -%}
{%- if not modules.re.match('^[0-9]{1,6}$', minor_units) -%}
    {{ exceptions.raise_compiler_error(
        "var reconciliation_tolerance_minor_units must be a whole number of minor units, "
        ~ "0 or more (1 = one cent in EUR, one yen in JPY); got '" ~ minor_units ~ "'"
    ) }}
{%- endif -%}
{%- set by_currency = var('reconciliation_tolerance_by_currency', {}) or {} -%}
{%- if by_currency is not mapping -%}
    {{ exceptions.raise_compiler_error(
        "var reconciliation_tolerance_by_currency must map ISO 4217 codes to amounts, "
        ~ "e.g. {EUR: 0.05, JPY: 5}; got '" ~ by_currency ~ "'"
    ) }}
{%- endif -%}
{%- for code, amount in by_currency.items() -%}
    {%- if not modules.re.match('^[A-Za-z]{3}$', code | string)
        or not modules.re.match('^[0-9]{1,12}([.][0-9]{1,4})?$', amount | string | trim) -%}
        {{ exceptions.raise_compiler_error(
            "var reconciliation_tolerance_by_currency: '" ~ code ~ ": " ~ amount
            ~ "' is not an ISO 4217 code with an amount of 0 or more (at most 4 decimals), "
            ~ "e.g. EUR: 0.05"
        ) }}
    {%- endif -%}
{%- endfor -%}

with

currencies as (

    select * from {{ ref('iso_currencies') }}

),

minor_unit_amounts as (

    select
        currency_code,
        minor_units,
        case minor_units
            when 0 then 1
            when 1 then 0.1
            when 2 then 0.01
            when 3 then 0.001
            when 4 then 0.0001
        end as minor_unit_amount

    from currencies

),

final as (

    select
        currency_code as currency,
        minor_units,
        cast(
            {%- if by_currency %}
            case
                {%- for code, amount in by_currency.items() %}
                when currency_code = '{{ code | upper }}'
                    then cast('{{ amount | string | trim }}' as decimal(20, 4))
                {%- endfor %}
                else minor_unit_amount * {{ minor_units }}
            end
            {%- else %}
            minor_unit_amount * {{ minor_units }}
            {%- endif %}
            as decimal(20, 4)
        ) as tolerance_amount

    from minor_unit_amounts

)

select * from final
