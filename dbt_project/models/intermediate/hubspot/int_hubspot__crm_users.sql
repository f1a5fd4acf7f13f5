{#- HubSpot owners as CRM users. An owner is active while it is tied to an active HubSpot
    user (active_user_id set); a team queue without a user counts as inactive. -#}
with

owners as (

    select * from {{ ref('stg_hubspot__owners') }}

),

final as (

    select
        owner_id as user_id,
        coalesce(nullif(trim(concat_ws(' ', first_name, last_name)), ''), email) as user_name,
        email,
        active_user_id is not null as is_active

    from owners

)

select * from final
