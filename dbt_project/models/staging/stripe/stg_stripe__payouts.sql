with

source as (

    select * from {{ source('stripe', 'payout') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as payout_id,
        trim(balance_transaction_id) as balance_transaction_id,
        trim(failure_balance_transaction_id) as failure_balance_transaction_id,
        trim(destination_bank_account_id) as destination_bank_account_id,
        trim(destination_card_id) as destination_card_id,

        ---------- text
        upper(trim(currency)) as currency_code,
        lower(trim(status)) as status,
        lower(trim(type)) as payout_type,
        lower(trim(method)) as payout_method,
        lower(trim(source_type)) as source_type,
        description,
        statement_descriptor,
        failure_code,
        failure_message,
        metadata,

        ---------- numerics (minor units)
        {{ q2c_decimal('amount', 24, 4) }} as amount_minor,

        ---------- booleans
        {{ q2c_parse_bool('automatic') }} as is_automatic,
        {{ q2c_parse_bool('livemode') }} as is_livemode,

        ---------- dates and timestamps
        {{ q2c_parse_date('arrival_date') }} as arrival_date,
        {{ q2c_parse_timestamp('created') }} as created_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select
        renamed.payout_id,
        renamed.balance_transaction_id,
        renamed.failure_balance_transaction_id,
        renamed.destination_bank_account_id,
        renamed.destination_card_id,
        renamed.currency_code,
        renamed.status,
        renamed.payout_type,
        renamed.payout_method,
        renamed.source_type,
        renamed.description,
        renamed.statement_descriptor,
        renamed.failure_code,
        renamed.failure_message,
        renamed.metadata,
        cast(renamed.amount_minor * units.minor_unit_factor as decimal(20, 4)) as amount,
        renamed.is_automatic,
        renamed.is_livemode,
        renamed.arrival_date,
        renamed.created_at,
        renamed.synced_at,
        renamed._q2c_source_file,
        renamed._q2c_source_row

    from renamed

    left join currency_units as units
        on renamed.currency_code = units.currency_code

)

select * from final
