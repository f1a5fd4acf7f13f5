{#- A credit note line carries no currency of its own: its amounts are in the currency of
    its credit note, read from the raw credit note to convert the minor units. -#}
with

source as (

    select * from {{ source('stripe', 'credit_note_line_item') }}

),

credit_notes as (

    select
        trim(id) as credit_note_id,
        upper(trim(currency)) as currency_code

    from {{ source('stripe', 'credit_note') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as credit_note_line_item_id,
        trim(credit_note_id) as credit_note_id,

        ---------- text
        lower(trim(type)) as line_type,
        description,

        ---------- numerics (amounts in minor units)
        {{ q2c_decimal('amount', 24, 4) }} as amount_minor,
        {{ q2c_decimal('discount_amount', 24, 4) }} as discount_minor,
        {{ q2c_decimal('quantity', 20, 6) }} as quantity,
        {{ q2c_decimal('unit_amount_decimal', 28, 12) }} as unit_amount_minor,

        ---------- booleans
        {{ q2c_parse_bool('livemode') }} as is_livemode,

        ---------- timestamps
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select
        renamed.credit_note_line_item_id,
        renamed.credit_note_id,
        renamed.line_type,
        renamed.description,
        credit_notes.currency_code,
        cast(renamed.amount_minor * units.minor_unit_factor as decimal(20, 4)) as amount,
        cast(renamed.discount_minor * units.minor_unit_factor as decimal(20, 4))
            as discount_amount,
        renamed.quantity,
        cast(renamed.unit_amount_minor * units.minor_unit_factor as decimal(20, 6))
            as unit_amount,
        renamed.is_livemode,
        renamed.synced_at,
        renamed._q2c_source_file,
        renamed._q2c_source_row

    from renamed

    left join credit_notes
        on renamed.credit_note_id = credit_notes.credit_note_id

    left join currency_units as units
        on credit_notes.currency_code = units.currency_code

)

select * from final
