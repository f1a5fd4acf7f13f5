with

source as (

    select * from {{ source('salesforce', 'case') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as case_id,
        trim(account_id) as account_id,
        trim(contact_id) as contact_id,
        trim(case_number) as case_number,
        trim(invoice_number_c) as invoice_number,

        ---------- text
        subject,
        trim(type) as case_type,
        reason,
        status,
        priority,
        origin,

        ---------- booleans
        {{ q2c_parse_bool('is_closed') }} as is_closed,
        {{ q2c_parse_bool('is_deleted') }} as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('created_date') }} as created_at,
        {{ q2c_parse_timestamp('closed_date') }} as closed_at,
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
