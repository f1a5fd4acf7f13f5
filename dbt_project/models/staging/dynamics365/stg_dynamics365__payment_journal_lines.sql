{#- Customer payment journal lines. Dynamics quotes exchange rates per 100 units of the
    foreign currency; exchange_rate here is per unit. The journal line number is a real in
    Dynamics ('1.0000000000000000') and is read as a whole number. A receipt is a credit to
    the customer, so amount = credit - debit. -#}
with

source as (

    select * from {{ source('dynamics365', 'customerpaymentjournallineentity') }}

),

renamed as (

    select
        ---------- ids
        lower(trim(dataareaid)) as company_id,
        trim(journalbatchnumber) as journal_batch_number,
        {{ q2c_int('linenumber') }} as line_number,
        {{ dbt.concat(["lower(trim(dataareaid))", "':'", "trim(voucher)"]) }} as payment_id,
        trim(voucher) as voucher,
        case
            when trim(accounttype) = 'Cust'
                then {{ dbt.concat(["lower(trim(dataareaid))", "':'",
                                    "trim(accountdisplayvalue)"]) }}
        end as customer_id,
        case
            when nullif(trim(markedinvoice), '') is not null
                then {{ dbt.concat([
                    "lower(trim(coalesce(nullif(trim(markedinvoicecompany), ''), dataareaid)))",
                    "':'", "trim(markedinvoice)"]) }}
        end as marked_invoice_id,
        trim(markedinvoice) as marked_invoice_number,
        trim(paymentid) as payment_reference_id,

        ---------- text
        trim(accounttype) as account_type,
        customername as customer_name,
        upper(trim(currencycode)) as currency_code,
        trim(paymentmethodname) as payment_method,
        trim(paymentreference) as payment_reference,
        trim(settlevoucher) as settle_voucher,
        transactiontext as transaction_text,

        ---------- numerics
        cast({{ q2c_decimal('exchangerate', 20, 10) }} / 100 as decimal(20, 10))
            as exchange_rate,
        {{ q2c_amount('creditamount') }} as credit_amount,
        {{ q2c_amount('debitamount') }} as debit_amount,
        {#- Unknown when either side is there but unreadable, never half an amount. -#}
        case
            when nullif(trim(creditamount), '') is not null
                and {{ q2c_amount('creditamount') }} is null
                then null
            when nullif(trim(debitamount), '') is not null
                and {{ q2c_amount('debitamount') }} is null
                then null
            else coalesce({{ q2c_amount('creditamount') }}, 0)
                - coalesce({{ q2c_amount('debitamount') }}, 0)
        end as amount,

        ---------- booleans
        {{ q2c_parse_bool('isprepayment') }} as is_prepayment,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- dates and timestamps
        nullif({{ q2c_parse_date('transactiondate') }}, cast('1900-01-01' as date))
            as transaction_date,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(creditamount), '') is not null
                    and {{ q2c_amount('creditamount') }} is null
                    then 'creditamount'
            end,
            case
                when nullif(trim(debitamount), '') is not null
                    and {{ q2c_amount('debitamount') }} is null
                    then 'debitamount'
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
