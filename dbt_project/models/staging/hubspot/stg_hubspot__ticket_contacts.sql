with

source as (

    select * from {{ source('hubspot', 'ticket_contact') }}

),

renamed as (

    select
        ---------- ids
        trim(ticket_id) as ticket_id,
        trim(contact_id) as contact_id,

        ---------- text
        category as association_category,

        ---------- timestamps
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

)

select * from renamed
