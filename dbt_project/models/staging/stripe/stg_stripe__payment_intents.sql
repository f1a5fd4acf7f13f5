{#- q2c_channel and q2c_invoice_number: the metadata keys q2c's portal checkout sets, read
    as in stg_stripe__charges. -#}
{%- set compact_metadata -%} replace(metadata, '": "', '":"') {%- endset -%}
{%- set channel_key -%} '"q2c_channel":"' {%- endset -%}
{%- set invoice_number_key -%} '"q2c_invoice_number":"' {%- endset -%}
{%- set json_quote -%} '"' {%- endset -%}
with

source as (

    select * from {{ source('stripe', 'payment_intent') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as payment_intent_id,
        trim(customer_id) as customer_id,
        trim(payment_method_id) as payment_method_id,

        ---------- text
        upper(trim(currency)) as currency_code,
        lower(trim(status)) as status,
        description,
        metadata,
        lower(nullif(trim({{ dbt.split_part(
            dbt.split_part(compact_metadata, channel_key, 2), json_quote, 1
        ) }}), '')) as q2c_channel,
        nullif(trim({{ dbt.split_part(
            dbt.split_part(compact_metadata, invoice_number_key, 2), json_quote, 1
        ) }}), '') as q2c_invoice_number,
        lower(trim(capture_method)) as capture_method,
        cancellation_reason,

        ---------- numerics (minor units)
        {{ q2c_decimal('amount', 24, 4) }} as amount_minor,
        {{ q2c_decimal('amount_received', 24, 4) }} as amount_received_minor,
        {{ q2c_decimal('amount_capturable', 24, 4) }} as amount_capturable_minor,

        ---------- booleans
        {{ q2c_parse_bool('livemode') }} as is_livemode,

        ---------- timestamps
        {{ q2c_parse_timestamp('created') }} as created_at,
        {{ q2c_parse_timestamp('canceled_at') }} as canceled_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select
        renamed.payment_intent_id,
        renamed.customer_id,
        renamed.payment_method_id,
        renamed.currency_code,
        renamed.status,
        renamed.description,
        renamed.metadata,
        renamed.q2c_channel,
        renamed.q2c_invoice_number,
        renamed.capture_method,
        renamed.cancellation_reason,
        cast(renamed.amount_minor * units.minor_unit_factor as decimal(20, 4)) as amount,
        cast(renamed.amount_received_minor * units.minor_unit_factor as decimal(20, 4))
            as amount_received,
        cast(renamed.amount_capturable_minor * units.minor_unit_factor as decimal(20, 4))
            as amount_capturable,
        renamed.is_livemode,
        renamed.created_at,
        renamed.canceled_at,
        renamed.synced_at,
        renamed._q2c_source_file,
        renamed._q2c_source_row

    from renamed

    left join currency_units as units
        on renamed.currency_code = units.currency_code

)

select * from final
