{#- Amounts keep NetSuite's sign: on sales documents item and tax lines are credits
    (negative), the main line a debit (positive); the adapters turn them into document
    amounts. -#}
with

source as (

    select * from {{ source('netsuite', 'transactionline') }}

),

renamed as (

    select
        ---------- ids
        trim({{ adapter.quote('transaction') }}) as transaction_id,
        trim(id) as transaction_line_id,
        {{ q2c_int('linesequencenumber') }} as line_sequence_number,
        trim(item) as item_id,
        trim(createdfrom) as created_from_transaction_id,
        trim(paymentmethod) as payment_method_id,

        ---------- text
        trim(itemtype) as item_type,
        memo,

        ---------- numerics
        {{ q2c_decimal('quantity', 20, 6) }} as quantity,
        {{ q2c_decimal('rate', 20, 6) }} as rate,
        {{ q2c_decimal('ratepercent', 9, 4) }} as rate_percent,
        {{ q2c_amount('foreignamount') }} as amount,
        {{ q2c_amount('netamount') }} as base_net_amount,
        {{ q2c_amount('foreignamountunpaid') }} as unpaid_amount,
        {{ q2c_amount('foreignpaymentamountunused') }} as unused_payment_amount,
        {{ q2c_amount('foreignpaymentamountused') }} as used_payment_amount,

        ---------- booleans
        {{ q2c_parse_bool('mainline') }} as is_main_line,
        {{ q2c_parse_bool('taxline') }} as is_tax_line,
        {{ q2c_parse_bool('iscogs') }} as is_cogs,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('linelastmodifieddate') }} as updated_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(foreignamount), '') is not null
                    and {{ q2c_amount('foreignamount') }} is null
                    then 'foreignamount'
            end,
            case
                when nullif(trim(quantity), '') is not null
                    and {{ q2c_decimal('quantity', 20, 6) }} is null
                    then 'quantity'
            end,
            case
                when nullif(trim(rate), '') is not null
                    and {{ q2c_decimal('rate', 20, 6) }} is null
                    then 'rate'
            end,
            case
                when nullif(trim(foreignamountunpaid), '') is not null
                    and {{ q2c_amount('foreignamountunpaid') }} is null
                    then 'foreignamountunpaid'
            end,
            case
                when nullif(trim(foreignpaymentamountunused), '') is not null
                    and {{ q2c_amount('foreignpaymentamountunused') }} is null
                    then 'foreignpaymentamountunused'
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
