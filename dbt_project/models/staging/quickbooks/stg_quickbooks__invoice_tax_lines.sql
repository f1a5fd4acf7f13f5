with

source as (

    select * from {{ source('quickbooks', 'invoice_tax_line') }}

),

renamed as (

    select
        ---------- ids
        trim(invoice_id) as invoice_id,
        {{ q2c_int(adapter.quote('index')) }} as line_index,
        trim(tax_rate_id) as tax_rate_id,

        ---------- numerics
        {{ q2c_amount('amount') }} as tax_amount,
        {{ q2c_amount('net_amount_taxable') }} as taxable_amount,
        {{ q2c_amount('tax_inclusive_amount') }} as tax_inclusive_amount,
        {{ q2c_decimal('tax_percent', 9, 4) }} as tax_percent,

        ---------- booleans
        {{ q2c_parse_bool('percent_based') }} as is_percent_based,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed
    where not coalesce(is_deleted, false)

)

select * from final
