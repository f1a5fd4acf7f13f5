with

source as (

    select * from {{ source('quickbooks', 'customer') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as customer_id,
        trim(bill_address_id) as bill_address_id,
        trim(parent_customer_id) as parent_customer_id,
        trim(sales_term_id) as sales_term_id,

        ---------- text
        display_name,
        company_name,
        fully_qualified_name,
        given_name,
        family_name,
        lower(trim(email)) as email,
        website,
        trim(primary_tax_identifier) as tax_id,
        upper(trim(currency_id)) as currency_code,
        {#- QuickBooks writes 'None' when the customer chose to receive no invoices; an
            empty value means nothing was recorded. -#}
        nullif(lower(trim(preferred_delivery_method)), '') as preferred_delivery_method,

        ---------- numerics
        {{ q2c_amount('balance') }} as balance_amount,

        ---------- booleans
        {{ q2c_parse_bool('active') }} as is_active,
        {{ q2c_parse_bool('taxable') }} as is_taxable,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('created_at') }} as created_at,
        {{ q2c_parse_timestamp('updated_at') }} as updated_at,
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
