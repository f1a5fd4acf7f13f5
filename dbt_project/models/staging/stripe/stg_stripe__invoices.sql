with

source as (

    select * from {{ source('stripe', 'invoice') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as invoice_id,
        trim(number) as invoice_number,
        trim(customer_id) as customer_id,
        trim(subscription_id) as subscription_id,
        trim(charge_id) as charge_id,
        trim(payment_intent_id) as payment_intent_id,

        ---------- text
        upper(trim(currency)) as currency_code,
        lower(trim(status)) as status,
        lower(trim(billing_reason)) as billing_reason,
        description,
        metadata,

        ---------- numerics (minor units, except the percentage and the count)
        {{ q2c_decimal('subtotal', 24, 4) }} as subtotal_minor,
        {{ q2c_decimal('tax', 24, 4) }} as tax_minor,
        {{ q2c_decimal('total', 24, 4) }} as total_minor,
        {{ q2c_decimal('amount_due', 24, 4) }} as amount_due_minor,
        {{ q2c_decimal('amount_paid', 24, 4) }} as amount_paid_minor,
        {{ q2c_decimal('amount_remaining', 24, 4) }} as amount_remaining_minor,
        {{ q2c_decimal('pre_payment_credit_notes_amount', 24, 4) }}
            as pre_payment_credit_notes_minor,
        {{ q2c_decimal('post_payment_credit_notes_amount', 24, 4) }}
            as post_payment_credit_notes_minor,
        {{ q2c_decimal('tax_percent', 9, 4) }} as tax_percent,
        {{ q2c_int('attempt_count') }} as attempt_count,

        ---------- booleans
        {{ q2c_parse_bool('paid') }} as is_paid,
        {{ q2c_parse_bool('livemode') }} as is_livemode,
        {{ q2c_parse_bool('is_deleted') }} as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('created') }} as created_at,
        {{ q2c_parse_timestamp('due_date') }} as due_at,
        {{ q2c_parse_timestamp('period_start') }} as period_start_at,
        {{ q2c_parse_timestamp('period_end') }} as period_end_at,
        {{ q2c_parse_timestamp('status_transitions_finalized_at') }} as finalized_at,
        {{ q2c_parse_timestamp('status_transitions_paid_at') }} as paid_at,
        {{ q2c_parse_timestamp('status_transitions_marked_uncollectible_at') }}
            as marked_uncollectible_at,
        {{ q2c_parse_timestamp('status_transitions_voided_at') }} as voided_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select
        renamed.invoice_id,
        renamed.invoice_number,
        renamed.customer_id,
        renamed.subscription_id,
        renamed.charge_id,
        renamed.payment_intent_id,
        renamed.currency_code,
        renamed.status,
        renamed.billing_reason,
        renamed.description,
        renamed.metadata,
        cast(renamed.subtotal_minor * units.minor_unit_factor as decimal(20, 4))
            as subtotal_amount,
        cast(renamed.tax_minor * units.minor_unit_factor as decimal(20, 4)) as tax_amount,
        cast(renamed.total_minor * units.minor_unit_factor as decimal(20, 4))
            as total_amount,
        cast(renamed.amount_due_minor * units.minor_unit_factor as decimal(20, 4))
            as amount_due,
        cast(renamed.amount_paid_minor * units.minor_unit_factor as decimal(20, 4))
            as amount_paid,
        cast(renamed.amount_remaining_minor * units.minor_unit_factor as decimal(20, 4))
            as amount_remaining,
        cast(
            renamed.pre_payment_credit_notes_minor * units.minor_unit_factor
            as decimal(20, 4)
        ) as pre_payment_credit_notes_amount,
        cast(
            renamed.post_payment_credit_notes_minor * units.minor_unit_factor
            as decimal(20, 4)
        ) as post_payment_credit_notes_amount,
        renamed.tax_percent,
        renamed.attempt_count,
        renamed.is_paid,
        renamed.is_livemode,
        renamed.is_deleted,
        renamed.created_at,
        renamed.due_at,
        renamed.period_start_at,
        renamed.period_end_at,
        renamed.finalized_at,
        renamed.paid_at,
        renamed.marked_uncollectible_at,
        renamed.voided_at,
        renamed.synced_at,
        renamed._q2c_source_file,
        renamed._q2c_source_row

    from renamed

    left join currency_units as units
        on renamed.currency_code = units.currency_code

    where not coalesce(renamed.is_deleted, false)

)

select * from final
