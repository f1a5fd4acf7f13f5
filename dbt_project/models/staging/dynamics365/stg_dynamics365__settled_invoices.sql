{#- The invoices (and credit notes) marked for settlement on a payment journal line, with
    the amount settled in the invoice's currency; a credit note settles a negative amount. -#}
with

source as (

    select * from {{ source('dynamics365', 'customerpaymentjournallinesettledinvoiceentity') }}

),

renamed as (

    select
        ---------- ids
        lower(trim(journallinecompany)) as company_id,
        trim(journalbatchnumber) as journal_batch_number,
        {{ q2c_int('journallinenumber') }} as line_number,
        {{ dbt.concat([
            "lower(trim(coalesce(nullif(trim(invoicecompany), ''), journallinecompany)))",
            "':'", "trim(invoicenumber)"]) }} as invoice_id,
        trim(invoicenumber) as invoice_number,
        trim(invoiceaccount) as invoice_account,

        ---------- numerics
        {{ q2c_amount('settlementamountininvoicecurrency') }} as settled_amount,
        {{ q2c_amount('cashdiscounttotakeininvoicecurrency') }} as cash_discount_amount,
        {{ q2c_decimal('invoicetopaymentcrossrate', 20, 10) }} as invoice_to_payment_rate,

        ---------- booleans
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- dates and timestamps
        nullif({{ q2c_parse_date('invoiceduedate') }}, cast('1900-01-01' as date))
            as invoice_due_date,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(settlementamountininvoicecurrency), '') is not null
                    and {{ q2c_amount('settlementamountininvoicecurrency') }} is null
                    then 'settlementamountininvoicecurrency'
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
