{#- NetSuite keeps the ISO 4217 code in `symbol`; the printed sign is `displaysymbol`. -#}
with

source as (

    select * from {{ source('netsuite', 'currency') }}

),

renamed as (

    select
        trim(id) as currency_id,
        upper(trim(symbol)) as currency_code,
        name as currency_name,
        displaysymbol as display_symbol,
        {{ q2c_int('currencyprecision') }} as currency_precision,
        {{ q2c_decimal('exchangerate', 20, 10) }} as exchange_rate,
        {{ q2c_parse_bool('isbasecurrency') }} as is_base_currency,
        {{ q2c_parse_bool('isinactive') }} as is_inactive,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,
        {{ q2c_parse_timestamp('lastmodifieddate') }} as updated_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed
    where not coalesce(is_deleted, false)

)

select * from final
