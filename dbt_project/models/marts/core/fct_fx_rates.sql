{#- The exchange rates behind every amount in the reporting currency: one row per currency
    and day a rate is known, valid until the next one. -#}
select
    {{ q2c_surrogate_key(['currency', 'valid_from']) }} as fx_rate_key,
    currency,
    cast('{{ var("reporting_currency") }}' as {{ dbt.type_string() }}) as reporting_currency,
    valid_from as rate_date,
    valid_from,
    valid_to,
    rate,
    rate_source,
    source_system,
    source_id

from {{ ref('int_fx_rates_daily') }}
