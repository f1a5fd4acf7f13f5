with

source as (

    select * from {{ source('stripe', 'credit_note') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as credit_note_id,
        trim(number) as credit_note_number,
        trim(invoice_id) as invoice_id,
        trim(refund_id) as refund_id,
        trim(customer_balance_transaction_id) as customer_balance_transaction_id,

        ---------- text
        upper(trim(currency)) as currency_code,
        lower(trim(status)) as status,
        lower(trim(type)) as credit_note_type,
        lower(trim(reason)) as reason,
        memo,
        metadata,

        ---------- numerics (minor units)
        {{ q2c_decimal('amount', 24, 4) }} as amount_minor,
        {{ q2c_decimal('subtotal', 24, 4) }} as subtotal_minor,
        {{ q2c_decimal('discount_amount', 24, 4) }} as discount_minor,
        {{ q2c_decimal('total', 24, 4) }} as total_minor,

        ---------- booleans
        {{ q2c_parse_bool('livemode') }} as is_livemode,

        ---------- timestamps
        {{ q2c_parse_timestamp('created') }} as created_at,
        {{ q2c_parse_timestamp('voided_at') }} as voided_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select
        renamed.credit_note_id,
        renamed.credit_note_number,
        renamed.invoice_id,
        renamed.refund_id,
        renamed.customer_balance_transaction_id,
        renamed.currency_code,
        renamed.status,
        renamed.credit_note_type,
        renamed.reason,
        renamed.memo,
        renamed.metadata,
        cast(renamed.amount_minor * units.minor_unit_factor as decimal(20, 4)) as amount,
        cast(renamed.subtotal_minor * units.minor_unit_factor as decimal(20, 4))
            as subtotal_amount,
        cast(renamed.discount_minor * units.minor_unit_factor as decimal(20, 4))
            as discount_amount,
        cast(renamed.total_minor * units.minor_unit_factor as decimal(20, 4))
            as total_amount,
        renamed.is_livemode,
        renamed.created_at,
        renamed.voided_at,
        renamed.synced_at,
        renamed._q2c_source_file,
        renamed._q2c_source_row

    from renamed

    left join currency_units as units
        on renamed.currency_code = units.currency_code

)

select * from final
