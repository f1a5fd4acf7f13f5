with

source as (

    select * from {{ source('netsuite', 'accountingperiod') }}

),

renamed as (

    select
        trim(id) as accounting_period_id,
        trim(parent) as parent_accounting_period_id,
        periodname as period_name,
        {{ q2c_parse_date('startdate') }} as start_date,
        {{ q2c_parse_date('enddate') }} as end_date,
        {{ q2c_parse_bool('closed') }} as is_closed,
        {{ q2c_parse_bool('isadjust') }} as is_adjustment,
        {{ q2c_parse_bool('isquarter') }} as is_quarter,
        {{ q2c_parse_bool('isyear') }} as is_year,
        {{ q2c_parse_bool('isposting') }} as is_posting,
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
