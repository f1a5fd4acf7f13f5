with

source as (

    select * from {{ source('netsuite', 'transaction') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as transaction_id,
        trim(tranid) as document_number,
        trim(transactionnumber) as transaction_number,
        trim(type) as transaction_type,
        trim(entity) as customer_id,
        trim(currency) as currency_id,
        trim(postingperiod) as accounting_period_id,
        trim(terms) as term_id,
        trim(otherrefnum) as reference_number,

        ---------- text
        trim(status) as status,
        memo,
        lower(trim(email)) as email,

        ---------- numerics
        {{ q2c_decimal('exchangerate', 20, 10) }} as exchange_rate,
        {{ q2c_amount('foreigntotal') }} as total_amount,

        ---------- booleans
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- dates and timestamps
        {{ q2c_parse_date('trandate') }} as transaction_date,
        {{ q2c_parse_date('duedate') }} as due_date,
        {{ q2c_parse_date('closedate') }} as close_date,
        {{ q2c_parse_timestamp('createddate') }} as created_at,
        {{ q2c_parse_timestamp('lastmodifieddate') }} as updated_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(foreigntotal), '') is not null
                    and {{ q2c_amount('foreigntotal') }} is null
                    then 'foreigntotal'
            end,
            case
                when nullif(trim(exchangerate), '') is not null
                    and {{ q2c_decimal('exchangerate', 20, 10) }} is null
                    then 'exchangerate'
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
