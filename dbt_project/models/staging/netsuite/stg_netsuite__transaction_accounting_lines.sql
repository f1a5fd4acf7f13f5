{#- Postings in the subsidiary's base currency, one row per line and accounting book. -#}
with

source as (

    select * from {{ source('netsuite', 'transactionaccountingline') }}

),

renamed as (

    select
        trim({{ adapter.quote('transaction') }}) as transaction_id,
        trim(transactionline) as transaction_line_id,
        trim(accountingbook) as accounting_book_id,
        trim(account) as account_id,
        {{ q2c_amount('amount') }} as base_amount,
        {{ q2c_amount('netamount') }} as base_net_amount,
        {{ q2c_amount('credit') }} as base_credit_amount,
        {{ q2c_amount('debit') }} as base_debit_amount,
        {{ q2c_amount('amountpaid') }} as base_paid_amount,
        {{ q2c_amount('amountunpaid') }} as base_unpaid_amount,
        {{ q2c_parse_bool('posting') }} as is_posting,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,
        nullif(concat_ws(', ',
            case
                when nullif(trim(amount), '') is not null
                    and {{ q2c_amount('amount') }} is null
                    then 'amount'
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
