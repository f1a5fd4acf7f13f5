with

source as (

    select * from {{ source('netsuite', 'previoustransactionlinelink') }}

),

renamed as (

    select
        trim(previousdoc) as previous_transaction_id,
        trim(previousline) as previous_line_id,
        trim(previoustype) as previous_type,
        trim(nextdoc) as next_transaction_id,
        trim(nextline) as next_line_id,
        trim(nexttype) as next_type,
        trim(linktype) as link_type,
        {{ q2c_amount('foreignamount') }} as amount,
        {{ q2c_amount('amount') }} as base_amount,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,
        {{ q2c_parse_timestamp('lastmodifieddate') }} as updated_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,
        nullif(concat_ws(', ',
            case
                when nullif(trim(foreignamount), '') is not null
                    and {{ q2c_amount('foreignamount') }} is null
                    then 'foreignamount'
            end
        ), '') as unparsed_fields,
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed
    where not coalesce(is_deleted, false)

)

select * from final
