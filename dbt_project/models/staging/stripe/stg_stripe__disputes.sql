with

source as (

    select * from {{ source('stripe', 'dispute') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as dispute_id,
        trim(charge_id) as charge_id,
        trim(balance_transaction) as balance_transaction_id,

        ---------- text
        upper(trim(currency)) as currency_code,
        lower(trim(status)) as status,
        lower(trim(reason)) as reason,
        metadata,

        ---------- numerics (minor units)
        {{ q2c_decimal('amount', 24, 4) }} as amount_minor,

        ---------- booleans
        {{ q2c_parse_bool('is_charge_refundable') }} as is_charge_refundable,
        {{ q2c_parse_bool('livemode') }} as is_livemode,

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
        renamed.dispute_id,
        renamed.charge_id,
        renamed.balance_transaction_id,
        renamed.currency_code,
        renamed.status,
        renamed.reason,
        renamed.metadata,
        cast(renamed.amount_minor * units.minor_unit_factor as decimal(20, 4)) as amount,
        renamed.is_charge_refundable,
        renamed.is_livemode,
        renamed.created_at,
        renamed.synced_at,
        renamed._q2c_source_file,
        renamed._q2c_source_row

    from renamed

    left join currency_units as units
        on renamed.currency_code = units.currency_code

)

select * from final
