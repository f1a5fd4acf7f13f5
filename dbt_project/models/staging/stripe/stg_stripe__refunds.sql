with

source as (

    select * from {{ source('stripe', 'refund') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as refund_id,
        trim(charge_id) as charge_id,
        trim(payment_intent_id) as payment_intent_id,
        trim(balance_transaction_id) as balance_transaction_id,
        trim(failure_balance_transaction_id) as failure_balance_transaction_id,
        trim(receipt_number) as receipt_number,

        ---------- text
        upper(trim(currency)) as currency_code,
        lower(trim(status)) as status,
        lower(trim(reason)) as reason,
        description,
        metadata,

        ---------- numerics (minor units)
        {{ q2c_decimal('amount', 24, 4) }} as amount_minor,

        ---------- timestamps
        {{ q2c_parse_timestamp('created') }} as created_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select
        renamed.refund_id,
        renamed.charge_id,
        renamed.payment_intent_id,
        renamed.balance_transaction_id,
        renamed.failure_balance_transaction_id,
        renamed.receipt_number,
        renamed.currency_code,
        renamed.status,
        renamed.reason,
        renamed.description,
        renamed.metadata,
        cast(renamed.amount_minor * units.minor_unit_factor as decimal(20, 4)) as amount,
        renamed.created_at,
        renamed.synced_at,
        renamed._q2c_source_file,
        renamed._q2c_source_row

    from renamed

    left join currency_units as units
        on renamed.currency_code = units.currency_code

)

select * from final
