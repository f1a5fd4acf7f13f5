{#- Intacct keeps amounts twice: in the company's base currency (totalentered) and in
    the invoice's own currency (trx_totalentered, empty when they are the same). The
    document amounts here are the trx_ ones when present. -#}
with

source as (

    select * from {{ source('sage_intacct', 'ar_invoice') }}

),

renamed as (

    select
        ---------- ids
        trim(recordno) as invoice_id,
        trim(recordid) as invoice_number,
        trim(customerid) as customer_id,
        trim(docnumber) as reference_number,
        trim(billtopaytokey) as bill_to_contact_key,

        ---------- text
        trim(recordtype) as record_type,
        customername as customer_name,
        description,
        trim(state) as state,
        upper(trim(currency)) as currency_code,
        upper(trim(basecurr)) as base_currency_code,
        trim(termname) as term_name,

        ---------- numerics
        {{ q2c_decimal('exchange_rate', 20, 10) }} as exchange_rate,
        case
            when nullif(trim(trx_totalentered), '') is not null
                then {{ q2c_amount('trx_totalentered') }}
            else {{ q2c_amount('totalentered') }}
        end as total_amount,
        case
            when nullif(trim(trx_totaldue), '') is not null
                then {{ q2c_amount('trx_totaldue') }}
            else {{ q2c_amount('totaldue') }}
        end as due_amount,
        case
            when nullif(trim(trx_totalpaid), '') is not null
                then {{ q2c_amount('trx_totalpaid') }}
            else {{ q2c_amount('totalpaid') }}
        end as paid_amount,
        {{ q2c_amount('totalentered') }} as base_total_amount,
        {{ q2c_amount('totaldue') }} as base_due_amount,
        {{ q2c_int('due_in_days') }} as due_in_days,

        ---------- dates and timestamps
        {{ q2c_parse_date('whencreated') }} as invoice_date,
        {{ q2c_parse_date('whendue') }} as due_date,
        {{ q2c_parse_date('whenposted') }} as posted_date,
        {{ q2c_parse_date('whenpaid') }} as paid_date,
        {{ q2c_parse_timestamp('auwhencreated') }} as created_at,
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
                when nullif(trim(totaldue), '') is not null
                    and {{ q2c_amount('totaldue') }} is null
                    then 'totaldue'
            end,
            case
                when nullif(trim(trx_totalentered), '') is not null
                    and {{ q2c_amount('trx_totalentered') }} is null
                    then 'trx_totalentered'
            end,
            case
                when nullif(trim(trx_totaldue), '') is not null
                    and {{ q2c_amount('trx_totaldue') }} is null
                    then 'trx_totaldue'
            end,
            case
                when nullif(trim(exchange_rate), '') is not null
                    and {{ q2c_amount('exchange_rate') }} is null
                    then 'exchange_rate'
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
