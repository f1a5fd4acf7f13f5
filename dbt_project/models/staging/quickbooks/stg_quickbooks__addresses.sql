{#- Addresses carry no soft-delete column: a removed address simply stops being referenced. -#}
with

source as (

    select * from {{ source('quickbooks', 'address') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as address_id,

        ---------- text
        line_1,
        line_2,
        city,
        postal_code,
        country_sub_division_code as region,
        trim(country) as country,

        ---------- timestamps
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed

)

select * from final
