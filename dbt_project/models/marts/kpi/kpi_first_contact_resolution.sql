{#- Share of closed billing cases resolved at the first contact, per month of closing.
    Formula, grain and caveats: _kpi__models.yml. -#}
with

interactions as (

    select * from {{ ref('fct_interactions') }}

),

closed_billing_cases as (

    select
        cast({{ dbt.date_trunc('month', 'closed_at') }} as date) as closed_month,
        contact_count

    from interactions

    where is_billing
        and is_closed
        and interaction_type in ('case', 'ticket')
        and cast(closed_at as date) <= {{ q2c_as_of_date() }}

),

monthly as (

    select
        closed_month,
        count(*) as cases_closed,
        count(contact_count) as cases_measured,
        count(case when contact_count <= 1 then 1 end) as cases_resolved_first_contact

    from closed_billing_cases

    group by closed_month

),

final as (

    select
        closed_month,
        {{ q2c_as_of_date() }} as as_of_date,
        cases_closed,
        cases_measured,
        cases_closed - cases_measured as cases_without_contact_count,
        cases_resolved_first_contact,
        cast(
            {{ q2c_ratio('cases_resolved_first_contact', 'nullif(cases_measured, 0)') }}
            as decimal(9, 4)
        ) as first_contact_resolution_rate

    from monthly

)

select * from final
