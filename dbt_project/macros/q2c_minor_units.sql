{#- An amount kept as a whole number of minor units (q2c's operational store: cents, yen,
    fils) as a decimal of its currency, exact: divided by 10^minor_units (ISO 4217; 2 when
    the currency is unknown), never through a float. -#}
{% macro q2c_minor_to_amount(minor_expr, minor_units_expr) -%}
    cast(
        cast({{ minor_expr }} as decimal(20, 4))
        / case coalesce({{ minor_units_expr }}, 2)
            when 0 then 1
            when 3 then 1000
            when 4 then 10000
            else 100
        end
        as decimal(20, 4)
    )
{%- endmacro %}
