with

source as (

    select * from {{ source('netsuite', 'term') }}

),

renamed as (

    select
        trim(id) as term_id,
        name as term_name,
        {{ q2c_int('daysuntilnetdue') }} as due_days,
        {{ q2c_parse_bool('isinactive') }} as is_inactive,
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
