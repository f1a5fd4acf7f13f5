with

source as (

    select * from {{ source('quickbooks', 'invoice') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as invoice_id,
        trim(doc_number) as invoice_number,
        trim(customer_id) as customer_id,
        trim(billing_address_id) as billing_address_id,
        trim(sales_term_id) as sales_term_id,
        trim(custom_salesforce_opportunity_id) as crm_opportunity_id,

        ---------- text
        upper(trim(currency_id)) as currency_code,
        lower(trim(billing_email)) as billing_email,
        customer_memo,
        private_note,
        trim(email_status) as email_status,

        ---------- numerics
        {{ q2c_decimal('exchange_rate', 20, 10) }} as exchange_rate,
        {{ q2c_amount('total_amount') }} as total_amount,
        {{ q2c_amount('total_tax') }} as tax_amount,
        {{ q2c_amount('balance') }} as balance_amount,
        {{ q2c_amount('home_total_amount') }} as home_total_amount,
        {{ q2c_amount('home_balance') }} as home_balance_amount,

        ---------- booleans
        {{ q2c_parse_bool('apply_tax_after_discount') }} as is_tax_after_discount,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- dates and timestamps
        {{ q2c_parse_date('transaction_date') }} as issue_date,
        {{ q2c_parse_date('due_date') }} as due_date,
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
