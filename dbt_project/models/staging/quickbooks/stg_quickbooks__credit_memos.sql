with

source as (

    select * from {{ source('quickbooks', 'credit_memo') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as credit_memo_id,
        trim(doc_number) as credit_memo_number,
        trim(customer_id) as customer_id,

        ---------- text
        upper(trim(currency_id)) as currency_code,
        customer_memo,
        private_note,

        ---------- numerics
        {{ q2c_decimal('exchange_rate', 20, 10) }} as exchange_rate,
        {{ q2c_amount('total_amount') }} as total_amount,
        {{ q2c_amount('total_tax') }} as tax_amount,
        {{ q2c_amount('balance') }} as balance_amount,
        {{ q2c_amount('remaining_credit') }} as remaining_credit_amount,

        ---------- booleans
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- dates and timestamps
        {{ q2c_parse_date('transaction_date') }} as issue_date,
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
