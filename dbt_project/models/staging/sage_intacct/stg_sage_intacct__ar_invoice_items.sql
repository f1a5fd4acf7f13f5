{#- Invoice lines. lineitem is true for the lines a user entered and false for the lines
    Intacct adds itself, such as tax. -#}
with

source as (

    select * from {{ source('sage_intacct', 'ar_invoice_item') }}

),

renamed as (

    select
        ---------- ids
        trim(recordno) as invoice_item_id,
        trim(recordkey) as invoice_id,
        {{ q2c_int('line_no') }} as line_number,
        trim(itemid) as item_id,
        trim(accountno) as account_number,
        trim(customerid) as customer_id,

        ---------- text
        itemname as item_name,
        entrydescription as description,
        upper(trim(currency)) as currency_code,
        upper(trim(basecurr)) as base_currency_code,

        ---------- numerics
        case
            when nullif(trim(trx_amount), '') is not null
                then {{ q2c_amount('trx_amount') }}
            else {{ q2c_amount('amount') }}
        end as amount,
        {{ q2c_amount('amount') }} as base_amount,
        {{ q2c_decimal('exchange_rate', 20, 10) }} as exchange_rate,

        ---------- booleans
        {{ q2c_parse_bool('lineitem') }} as is_line_item,

        ---------- dates and timestamps
        {{ q2c_parse_timestamp('whencreated') }} as created_at,
        {{ q2c_parse_timestamp('whenmodified') }} as updated_at,

        ---------- sync
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(amount), '') is not null
                    and {{ q2c_amount('amount') }} is null
                    then 'amount'
            end,
            case
                when nullif(trim(trx_amount), '') is not null
                    and {{ q2c_amount('trx_amount') }} is null
                    then 'trx_amount'
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
