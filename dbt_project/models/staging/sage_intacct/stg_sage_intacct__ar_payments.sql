{#- AR payments (receipts). Document amounts are the trx_ ones when present. -#}
with

source as (

    select * from {{ source('sage_intacct', 'ar_payment') }}

),

renamed as (

    select
        ---------- ids
        trim(recordno) as payment_id,
        trim(recordid) as payment_number,
        trim(customerid) as customer_id,
        trim(docnumber) as reference_number,

        ---------- text
        trim(recordtype) as record_type,
        trim(paymentmethod) as payment_method,
        trim(state) as state,
        description,
        upper(trim(currency)) as currency_code,
        upper(trim(basecurr)) as base_currency_code,

        ---------- numerics
        {{ q2c_decimal('exchange_rate', 20, 10) }} as exchange_rate,
        case
            when nullif(trim(trx_totalentered), '') is not null
                then {{ q2c_amount('trx_totalentered') }}
            else {{ q2c_amount('totalentered') }}
        end as total_amount,
        {{ q2c_amount('totalentered') }} as base_total_amount,

        ---------- dates and timestamps
        {{ q2c_parse_date('whencreated') }} as receipt_date,
        {{ q2c_parse_date('whenpaid') }} as paid_date,
        {{ q2c_parse_timestamp('whenmodified') }} as updated_at,

        ---------- sync
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(totalentered), '') is not null
                    and {{ q2c_amount('totalentered') }} is null
                    then 'totalentered'
            end,
            case
                when nullif(trim(trx_totalentered), '') is not null
                    and {{ q2c_amount('trx_totalentered') }} is null
                    then 'trx_totalentered'
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
