with

source as (

    select * from {{ source('dynamics365', 'paymenttermentity') }}

),

renamed as (

    select
        lower(trim(dataareaid)) as company_id,
        trim(name) as payment_terms_name,
        description,
        trim(paymentmethodtype) as payment_method_type,
        {{ q2c_int('numberofdays') }} as number_of_days,
        {{ q2c_int('numberofmonths') }} as number_of_months,
        {{ q2c_int('cutoffdayofmonth') }} as cut_off_day_of_month,
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
