with

source as (

    select * from {{ source('hubspot', 'engagement_company') }}

),

renamed as (

    select
        ---------- ids
        trim(engagement_id) as engagement_id,
        trim(company_id) as company_id,
        nullif(trim(type_id), '') as association_type_id,

        ---------- text
        lower(trim(engagement_type)) as engagement_type,
        category as association_category,

        ---------- timestamps
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

)

select * from renamed
