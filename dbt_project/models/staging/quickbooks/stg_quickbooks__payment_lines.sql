{#- Payment lines have no soft-delete column of their own; a deleted payment's lines are
    dropped where they are joined to stg_quickbooks__payments. -#}
with

source as (

    select * from {{ source('quickbooks', 'payment_line') }}

),

renamed as (

    select
        ---------- ids
        trim(payment_id) as payment_id,
        {{ q2c_int(adapter.quote('index')) }} as line_index,
        trim(invoice_id) as invoice_id,
        trim(credit_memo_id) as credit_memo_id,

        ---------- numerics
        {{ q2c_amount('amount') }} as amount,

        ---------- timestamps
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed

)

select * from final
