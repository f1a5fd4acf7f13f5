{#- The owners' holds copied from the operational store. The copy exists once q2c has
    exported it; until then (a fresh warehouse) the model is empty rather than failing, and
    source() still records the dependency for lineage and for push-postgres. -#}
{%- set declared = source('q2c_collections', 'collection_holds') -%}
{%- set found = load_relation(declared) if execute else none -%}
with

holds as (

{%- if found is not none %}

    select * from {{ declared }}

{%- else %}

    select
        cast(null as bigint) as hold_id,
        cast(null as {{ dbt.type_string() }}) as account_key,
        cast(null as {{ dbt.type_string() }}) as account_name,
        cast(null as date) as held_until,
        cast(null as {{ dbt.type_string() }}) as reason,
        cast(null as {{ dbt.type_string() }}) as held_by,
        cast(null as {{ dbt.type_timestamp() }}) as held_at,
        cast(null as {{ dbt.type_timestamp() }}) as released_at,
        cast(null as {{ dbt.type_string() }}) as released_by,
        cast(null as {{ dbt.type_string() }}) as release_reason

    where 1 = 0

{%- endif %}

),

final as (

    select
        cast(hold_id as bigint) as hold_id,
        cast(account_key as {{ dbt.type_string() }}) as account_key,
        cast(account_name as {{ dbt.type_string() }}) as account_name,
        cast(held_at as date) as held_on,
        cast(held_until as date) as held_until,
        cast(released_at as date) as released_on,
        cast(reason as {{ dbt.type_string() }}) as reason,
        cast(held_by as {{ dbt.type_string() }}) as held_by,
        cast(held_at as {{ dbt.type_timestamp() }}) as held_at,
        cast(released_at as {{ dbt.type_timestamp() }}) as released_at,
        cast(released_by as {{ dbt.type_string() }}) as released_by,
        cast(release_reason as {{ dbt.type_string() }}) as release_reason

    from holds

)

select * from final
