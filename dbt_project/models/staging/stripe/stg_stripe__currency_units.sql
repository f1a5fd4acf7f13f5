{#- The exponent Stripe writes each currency's amounts with, from the ISO 4217 seed. Stripe
    follows ISO 4217 except where its API keeps an older representation
    (https://docs.stripe.com/currencies#special-cases): ISK stays two-decimal in the API
    (100 means 1 krona) and MGA is zero-decimal there, though ISO gives it 2. The factor
    turns an amount in minor units into currency units by multiplication, which keeps the
    result an exact decimal on every warehouse. -#}
with

iso_currencies as (

    select * from {{ ref('iso_currencies') }}

),

stripe_exponents as (

    select
        currency_code,
        minor_units as iso_minor_units,
        case currency_code
            when 'ISK' then 2
            when 'MGA' then 0
            else minor_units
        end as stripe_minor_units

    from iso_currencies

),

final as (

    select
        currency_code,
        iso_minor_units,
        stripe_minor_units,
        cast(
            case stripe_minor_units
                when 0 then 1
                when 1 then 0.1
                when 2 then 0.01
                when 3 then 0.001
                when 4 then 0.0001
            end
            as decimal(10, 4)
        ) as minor_unit_factor

    from stripe_exponents

)

select * from final
