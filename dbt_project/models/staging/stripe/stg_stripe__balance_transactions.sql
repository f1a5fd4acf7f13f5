with

source as (

    select * from {{ source('stripe', 'balance_transaction') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as balance_transaction_id,
        trim(source.source) as source_object_id,
        trim(payout_id) as payout_id,
        trim(connected_account_id) as connected_account_id,

        ---------- text
        lower(trim(type)) as transaction_type,
        lower(trim(reporting_category)) as reporting_category,
        lower(trim(status)) as status,
        description,
        upper(trim(currency)) as currency_code,

        ---------- numerics (minor units, except the rate)
        {{ q2c_decimal('amount', 24, 4) }} as amount_minor,
        {{ q2c_decimal('fee', 24, 4) }} as fee_minor,
        {{ q2c_decimal('net', 24, 4) }} as net_minor,
        {{ q2c_decimal('exchange_rate', 20, 10) }} as exchange_rate,

        ---------- timestamps
        {{ q2c_parse_timestamp('available_on') }} as available_on_at,
        {{ q2c_parse_timestamp('created') }} as created_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select
        renamed.balance_transaction_id,
        renamed.source_object_id,
        renamed.payout_id,
        renamed.connected_account_id,
        renamed.transaction_type,
        case
            when renamed.transaction_type in ('charge', 'payment') then 'charge'
            when renamed.transaction_type in (
                'refund', 'payment_refund', 'refund_failure', 'payment_failure_refund'
            ) then 'refund'
            when renamed.transaction_type like '%fee%' then 'fee'
            when renamed.transaction_type like 'payout%' then 'payout'
            else 'adjustment'
        end as transaction_category,
        renamed.reporting_category,
        renamed.status,
        renamed.description,
        renamed.currency_code,
        cast(renamed.amount_minor * units.minor_unit_factor as decimal(20, 4)) as amount,
        cast(renamed.fee_minor * units.minor_unit_factor as decimal(20, 4)) as fee_amount,
        cast(renamed.net_minor * units.minor_unit_factor as decimal(20, 4)) as net_amount,
        renamed.exchange_rate,
        renamed.available_on_at,
        renamed.created_at,
        renamed.synced_at,
        renamed._q2c_source_file,
        renamed._q2c_source_row

    from renamed

    left join currency_units as units
        on renamed.currency_code = units.currency_code

)

select * from final
