{#- The portal events copied from the operational store. Until q2c has exported them (a
    warehouse without a portal) the model is empty rather than failing, and source() still
    records the dependency for lineage and for push-postgres. -#}
{%- set declared = source('q2c_portal', 'portal_events') -%}
{%- set found = load_relation(declared) if execute else none -%}
with

events as (

{%- if found is not none %}

    select * from {{ declared }}

{%- else %}

    select
        cast(null as {{ dbt.type_string() }}) as event_id,
        cast(null as {{ dbt.type_timestamp() }}) as occurred_at,
        cast(null as {{ dbt.type_string() }}) as kind,
        cast(null as {{ dbt.type_string() }}) as account_key,
        cast(null as {{ dbt.type_string() }}) as invoice_id,
        cast(null as {{ dbt.type_string() }}) as object_id,
        cast(null as {{ dbt.type_string() }}) as actor,
        cast(null as {{ dbt.type_string() }}) as client,
        cast(null as {{ dbt.type_string() }}) as detail

    where 1 = 0

{%- endif %}

),

final as (

    select
        cast(event_id as {{ dbt.type_string() }}) as event_id,
        cast(occurred_at as {{ dbt.type_timestamp() }}) as occurred_at,
        cast(occurred_at as date) as occurred_on,
        cast(kind as {{ dbt.type_string() }}) as kind,
        cast(account_key as {{ dbt.type_string() }}) as account_key,
        cast(invoice_id as {{ dbt.type_string() }}) as invoice_id,
        cast(object_id as {{ dbt.type_string() }}) as object_id,
        cast(actor as {{ dbt.type_string() }}) as actor,
        case
            when actor like 'customer:%' or actor like 'link:%' then 'customer'
            when actor like 'staff:%' then 'staff'
            else cast(actor as {{ dbt.type_string() }})
        end as actor_type,
        cast(client as {{ dbt.type_string() }}) as client,
        cast(detail as {{ dbt.type_string() }}) as detail

    from events

)

select * from final
