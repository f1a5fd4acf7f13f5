with

source as (

    select * from {{ source('netsuite', 'entityaddress') }}

),

renamed as (

    select
        trim(nkey) as address_key,
        addressee,
        addr1 as address_line_1,
        addr2 as address_line_2,
        addr3 as address_line_3,
        city,
        state as region,
        zip as postal_code,
        upper(trim(country)) as country,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,
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
