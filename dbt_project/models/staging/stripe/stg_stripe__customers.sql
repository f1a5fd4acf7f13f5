with

source as (

    select * from {{ source('stripe', 'customer') }}

),

currency_units as (

    select * from {{ ref('stg_stripe__currency_units') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as customer_id,
        trim(invoice_prefix) as invoice_prefix,
        trim(tax_info_tax_id) as tax_id,

        ---------- text
        name as customer_name,
        description,
        lower(trim(email)) as email,
        phone,
        upper(trim(currency)) as currency_code,
        address_line_1,
        address_line_2,
        address_city,
        address_postal_code,
        address_state,
        upper(trim(address_country)) as address_country,
        lower(trim(tax_exempt)) as tax_exempt,
        metadata,

        ---------- numerics (minor units)
        {{ q2c_decimal('balance', 24, 4) }} as balance_minor,

        ---------- booleans
        {{ q2c_parse_bool('delinquent') }} as is_delinquent,
        {{ q2c_parse_bool('livemode') }} as is_livemode,
        {{ q2c_parse_bool('is_deleted') }} as is_deleted,

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
        renamed.customer_id,
        renamed.invoice_prefix,
        renamed.tax_id,
        renamed.customer_name,
        renamed.description,
        renamed.email,
        renamed.phone,
        renamed.currency_code,
        renamed.address_line_1,
        renamed.address_line_2,
        renamed.address_city,
        renamed.address_postal_code,
        renamed.address_state,
        renamed.address_country,
        renamed.tax_exempt,
        renamed.metadata,
        cast(
            renamed.balance_minor * currency_units.minor_unit_factor as decimal(20, 4)
        ) as balance_amount,
        renamed.is_delinquent,
        renamed.is_livemode,
        renamed.is_deleted,
        renamed.created_at,
        renamed.synced_at,
        renamed._q2c_source_file,
        renamed._q2c_source_row

    from renamed

    left join currency_units
        on renamed.currency_code = currency_units.currency_code

    where not coalesce(renamed.is_deleted, false)

)

select * from final
