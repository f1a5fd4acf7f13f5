with

source as (

    select * from {{ source('stripe', 'invoice_line_item') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as invoice_line_item_id,
        trim(invoice_id) as invoice_id,
        trim(invoice_item_id) as invoice_item_id,
        trim(subscription_id) as subscription_id,
        trim(subscription_item_id) as subscription_item_id,
        trim(price_id) as price_id,
        trim(plan_id) as plan_id,

        ---------- text
        lower(trim(type)) as line_type,
        description,
        upper(trim(currency)) as currency_code,

        ---------- numerics (amount and unit amount in minor units)
        {{ q2c_decimal('amount', 24, 4) }} as amount_minor,
        {{ q2c_decimal('quantity', 20, 6) }} as quantity,
        {{ q2c_decimal('unit_amount_excluding_tax', 28, 12) }} as unit_amount_minor,

        ---------- booleans
        {{ q2c_parse_bool('discountable') }} as is_discountable,
        {{ q2c_parse_bool('proration') }} as is_proration,
        {{ q2c_parse_bool('livemode') }} as is_livemode,

        ---------- timestamps
        {{ q2c_parse_timestamp('period_start') }} as period_start_at,
        {{ q2c_parse_timestamp('period_end') }} as period_end_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select
        renamed.invoice_line_item_id,
        renamed.invoice_id,
        renamed.invoice_item_id,
        renamed.subscription_id,
        renamed.subscription_item_id,
        renamed.price_id,
        renamed.plan_id,
        renamed.line_type,
        renamed.description,
        renamed.currency_code,
        cast(renamed.amount_minor * units.minor_unit_factor as decimal(20, 4)) as amount,
        renamed.quantity,
        cast(renamed.unit_amount_minor * units.minor_unit_factor as decimal(20, 6))
            as unit_amount_excluding_tax,
        renamed.is_discountable,
        renamed.is_proration,
        renamed.is_livemode,
        renamed.period_start_at,
        renamed.period_end_at,
        renamed.synced_at,
        renamed._q2c_source_file,
        renamed._q2c_source_row

    from renamed

    left join currency_units as units
        on renamed.currency_code = units.currency_code

)

select * from final
