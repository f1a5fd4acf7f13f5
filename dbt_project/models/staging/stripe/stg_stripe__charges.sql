{#- q2c_channel and q2c_invoice_number are the metadata keys q2c's portal checkout sets
    (see the model's yml). Metadata is read as text with split_part rather than parsed as
    JSON: a malformed metadata value then yields null instead of failing the build. -#}
{%- set compact_metadata -%} replace(metadata, '": "', '":"') {%- endset -%}
{%- set channel_key -%} '"q2c_channel":"' {%- endset -%}
{%- set invoice_number_key -%} '"q2c_invoice_number":"' {%- endset -%}
{%- set json_quote -%} '"' {%- endset -%}
with

source as (

    select * from {{ source('stripe', 'charge') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as charge_id,
        trim(customer_id) as customer_id,
        trim(invoice_id) as invoice_id,
        trim(payment_intent_id) as payment_intent_id,
        trim(balance_transaction_id) as balance_transaction_id,
        trim(payment_method_id) as payment_method_id,
        trim(card_id) as card_id,
        trim(receipt_number) as receipt_number,

        ---------- text
        upper(trim(currency)) as currency_code,
        lower(trim(status)) as status,
        failure_code,
        failure_message,
        description,
        statement_descriptor,
        lower(trim(receipt_email)) as receipt_email,
        metadata,
        lower(nullif(trim({{ dbt.split_part(
            dbt.split_part(compact_metadata, channel_key, 2), json_quote, 1
        ) }}), '')) as q2c_channel,
        nullif(trim({{ dbt.split_part(
            dbt.split_part(compact_metadata, invoice_number_key, 2), json_quote, 1
        ) }}), '') as q2c_invoice_number,

        ---------- numerics (minor units)
        {{ q2c_decimal('amount', 24, 4) }} as amount_minor,
        {{ q2c_decimal('amount_refunded', 24, 4) }} as amount_refunded_minor,
        {{ q2c_decimal('application_fee_amount', 24, 4) }} as application_fee_minor,

        ---------- booleans
        {{ q2c_parse_bool('paid') }} as is_paid,
        {{ q2c_parse_bool('captured') }} as is_captured,
        {{ q2c_parse_bool('refunded') }} as is_refunded,
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
        renamed.charge_id,
        renamed.customer_id,
        renamed.invoice_id,
        renamed.payment_intent_id,
        renamed.balance_transaction_id,
        renamed.payment_method_id,
        renamed.card_id,
        renamed.receipt_number,
        renamed.currency_code,
        renamed.status,
        renamed.failure_code,
        renamed.failure_message,
        renamed.description,
        renamed.statement_descriptor,
        renamed.receipt_email,
        renamed.metadata,
        renamed.q2c_channel,
        renamed.q2c_invoice_number,
        cast(renamed.amount_minor * units.minor_unit_factor as decimal(20, 4)) as amount,
        cast(renamed.amount_refunded_minor * units.minor_unit_factor as decimal(20, 4))
            as amount_refunded,
        cast(renamed.application_fee_minor * units.minor_unit_factor as decimal(20, 4))
            as application_fee_amount,
        renamed.is_paid,
        renamed.is_captured,
        renamed.is_refunded,
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
