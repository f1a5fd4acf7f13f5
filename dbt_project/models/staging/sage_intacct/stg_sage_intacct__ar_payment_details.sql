{#- One row per application within an AR payment: cash paid to an invoice
    (paymentamount) and credit of an adjustment applied to it (adjustmentamount). Document
    amounts are the trx_ ones when present. -#}
with

source as (

    select * from {{ source('sage_intacct', 'ar_payment_detail') }}

),

renamed as (

    select
        ---------- ids
        trim(recordno) as payment_detail_id,
        trim(paymentkey) as payment_id,
        trim(recordkey) as invoice_id,
        trim(entrykey) as invoice_item_id,
        trim(adjustmentkey) as adjustment_id,
        trim(adjustmententrykey) as adjustment_item_id,

        ---------- text
        upper(trim(currency)) as currency_code,

        ---------- numerics
        case
            when nullif(trim(trx_paymentamount), '') is not null
                then {{ q2c_amount('trx_paymentamount') }}
            else {{ q2c_amount('paymentamount') }}
        end as payment_amount,
        case
            when nullif(trim(trx_adjustmentamount), '') is not null
                then {{ q2c_amount('trx_adjustmentamount') }}
            else {{ q2c_amount('adjustmentamount') }}
        end as adjustment_amount,

        ---------- dates and timestamps
        {{ q2c_parse_date('paymentdate') }} as payment_date,
        {{ q2c_parse_timestamp('whenmodified') }} as updated_at,

        ---------- sync
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(paymentamount), '') is not null
                    and {{ q2c_amount('paymentamount') }} is null
                    then 'paymentamount'
            end,
            case
                when nullif(trim(trx_paymentamount), '') is not null
                    and {{ q2c_amount('trx_paymentamount') }} is null
                    then 'trx_paymentamount'
            end,
            case
                when nullif(trim(adjustmentamount), '') is not null
                    and {{ q2c_amount('adjustmentamount') }} is null
                    then 'adjustmentamount'
            end,
            case
                when nullif(trim(trx_adjustmentamount), '') is not null
                    and {{ q2c_amount('trx_adjustmentamount') }} is null
                    then 'trx_adjustmentamount'
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
