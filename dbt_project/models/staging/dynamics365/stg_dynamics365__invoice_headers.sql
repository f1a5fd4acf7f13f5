{#- Sales invoice headers. A credit note is a header with a negative total; both stay
    here. Dynamics writes 1900-01-01 for "no date", which becomes null. -#}
with

source as (

    select * from {{ source('dynamics365', 'salesinvoiceheaderv2entity') }}

),

renamed as (

    select
        ---------- ids
        {{ dbt.concat(["lower(trim(dataareaid))", "':'", "trim(invoicenumber)"]) }}
            as invoice_id,
        lower(trim(dataareaid)) as company_id,
        trim(invoicenumber) as invoice_number,
        {{ dbt.concat(["lower(trim(dataareaid))", "':'",
                       "trim(invoicecustomeraccountnumber)"]) }} as customer_id,
        trim(salesordernumber) as sales_order_number,
        trim(customersorderreference) as customer_reference,
        trim(paymenttermsname) as payment_terms_name,
        trim(ledgervoucher) as ledger_voucher,
        trim(deliverymodecode) as delivery_mode,
        trim(contactpersonid) as contact_person_id,

        ---------- text
        upper(trim(currencycode)) as currency_code,

        ---------- numerics
        {{ q2c_amount('totalinvoiceamount') }} as total_amount,
        {{ q2c_amount('totaltaxamount') }} as tax_amount,
        {{ q2c_amount('totaldiscountamount') }} as discount_amount,
        {{ q2c_amount('totalchargeamount') }} as charge_amount,
        {{ q2c_amount('invoiceheadertaxamount') }} as header_tax_amount,

        ---------- booleans
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- dates and timestamps
        nullif({{ q2c_parse_date('invoicedate') }}, cast('1900-01-01' as date))
            as invoice_date,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(totalinvoiceamount), '') is not null
                    and {{ q2c_amount('totalinvoiceamount') }} is null
                    then 'totalinvoiceamount'
            end,
            case
                when nullif(trim(totaltaxamount), '') is not null
                    and {{ q2c_amount('totaltaxamount') }} is null
                    then 'totaltaxamount'
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
