with

source as (

    select * from {{ source('salesforce', 'opportunity') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as opportunity_id,
        trim(account_id) as account_id,
        trim(owner_id) as owner_id,

        ---------- text
        name as opportunity_name,
        stage_name,
        type as opportunity_type,
        upper(trim(currency_iso_code)) as currency_code,

        ---------- numerics
        {{ q2c_amount('amount') }} as amount,

        ---------- booleans
        {{ q2c_parse_bool('is_closed') }} as is_closed,
        {{ q2c_parse_bool('is_won') }} as is_won,
        {{ q2c_parse_bool('is_deleted') }} as is_deleted,

        ---------- dates and timestamps
        {{ q2c_parse_date('close_date') }} as close_date,
        {{ q2c_parse_timestamp('created_date') }} as created_at,
        {{ q2c_parse_timestamp('last_modified_date') }} as updated_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed
    where not coalesce(is_deleted, false)

)

select * from final
