with

source as (

    select * from {{ source('dynamics365', 'salesinvoicelinev2entity') }}

),

renamed as (

    select
        ---------- ids
        {{ dbt.concat(["lower(trim(dataareaid))", "':'", "trim(invoicenumber)"]) }}
            as invoice_id,
        {{ q2c_int('linecreationsequencenumber') }} as line_number,
        trim(productnumber) as product_number,
        trim(ledgervoucher) as ledger_voucher,

        ---------- text
        productname as product_name,
        productdescription as product_description,
        trim(salesunitsymbol) as sales_unit,
        upper(trim(currencycode)) as currency_code,

        ---------- numerics
        {{ q2c_decimal('invoicedquantity', 20, 6) }} as quantity,
        {{ q2c_decimal('salesprice', 20, 6) }} as unit_price,
        {{ q2c_amount('lineamount') }} as line_amount,
        {{ q2c_amount('linetotaldiscountamount') }} as discount_amount,
        {{ q2c_amount('linetotalchargeamount') }} as charge_amount,
        {{ q2c_amount('linetotaltaxamount') }} as tax_amount,

        ---------- booleans
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- dates and timestamps
        nullif({{ q2c_parse_date('invoicedate') }}, cast('1900-01-01' as date))
            as invoice_date,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(lineamount), '') is not null
                    and {{ q2c_amount('lineamount') }} is null
                    then 'lineamount'
            end,
            case
                when nullif(trim(linetotaltaxamount), '') is not null
                    and {{ q2c_amount('linetotaltaxamount') }} is null
                    then 'linetotaltaxamount'
            end,
            case
                when nullif(trim(invoicedquantity), '') is not null
                    and {{ q2c_decimal('invoicedquantity', 20, 6) }} is null
                    then 'invoicedquantity'
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
