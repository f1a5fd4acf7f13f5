{#- How disputes end, per month of resolution, over every channel: first-contact
    resolution, outcomes and days to resolve. Formula, grain and caveats:
    _portal_kpi__models.yml. -#}
with

disputes as (

    select * from {{ ref('fct_disputes') }}

),

resolved as (

    select
        cast({{ dbt.date_trunc('month', 'resolved_at') }} as date) as resolved_month,
        channel,
        resolution,
        staff_step_count,
        {{ q2c_days_between('cast(opened_at as date)', 'cast(resolved_at as date)') }}
            as days_to_resolve

    from disputes

    where status = 'resolved'
        and resolved_at is not null
        and cast(resolved_at as date) <= {{ q2c_as_of_date() }}

),

monthly as (

    select
        resolved_month,
        count(*) as disputes_resolved,
        count(staff_step_count) as disputes_measured,
        count(case when staff_step_count <= 1 then 1 end) as disputes_resolved_first_contact,
        count(case when channel = 'portal' then 1 end) as portal_disputes_resolved,
        count(case
            when channel = 'portal' and staff_step_count <= 1 then 1
        end) as portal_disputes_resolved_first_contact,
        count(case when resolution = 'credited' then 1 end) as credited_count,
        count(case when resolution = 'corrected' then 1 end) as corrected_count,
        count(case when resolution = 'rejected' then 1 end) as rejected_count,
        sum(days_to_resolve) as total_days_to_resolve

    from resolved

    group by resolved_month

),

final as (

    select
        resolved_month,
        {{ q2c_as_of_date() }} as as_of_date,
        disputes_resolved,
        disputes_measured,
        disputes_resolved - disputes_measured as disputes_without_step_count,
        disputes_resolved_first_contact,
        cast(
            {{ q2c_ratio('disputes_resolved_first_contact', 'nullif(disputes_measured, 0)') }}
            as decimal(9, 4)
        ) as first_contact_resolution_rate,
        portal_disputes_resolved,
        portal_disputes_resolved_first_contact,
        cast(
            {{ q2c_ratio('portal_disputes_resolved_first_contact',
                         'nullif(portal_disputes_resolved, 0)') }}
            as decimal(9, 4)
        ) as portal_first_contact_resolution_rate,
        credited_count,
        corrected_count,
        rejected_count,
        cast(
            {{ q2c_ratio('total_days_to_resolve', 'disputes_resolved') }} as decimal(9, 4)
        ) as avg_days_to_resolve

    from monthly

)

select * from final
