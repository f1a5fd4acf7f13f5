with

source as (

    select * from {{ source('hubspot', 'deal_pipeline_stage') }}

),

renamed as (

    select
        ---------- ids
        trim(stage_id) as stage_id,
        trim(pipeline_id) as pipeline_id,

        ---------- text
        label as stage_label,

        ---------- numerics
        {{ q2c_int('display_order') }} as display_order,
        {{ q2c_decimal('probability', 9, 4) }} as probability,

        ---------- booleans
        {{ q2c_parse_bool('is_closed') }} as is_closed,
        {{ q2c_parse_bool('active') }} as is_active,
        coalesce({{ q2c_parse_bool('_fivetran_deleted') }}, false) as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('created_at') }} as created_at,
        {{ q2c_parse_timestamp('updated_at') }} as updated_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed
    where not is_deleted

)

select * from final
