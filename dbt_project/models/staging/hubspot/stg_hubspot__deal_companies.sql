with

source as (

    select * from {{ source('hubspot', 'deal_company') }}

),

renamed as (

    select
        ---------- ids
        trim(deal_id) as deal_id,
        trim(company_id) as company_id,
        nullif(trim(type_id), '') as association_type_id,

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
