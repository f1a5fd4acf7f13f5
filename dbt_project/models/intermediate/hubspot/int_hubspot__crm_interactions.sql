{#- HubSpot tickets and engagements (calls, emails, meetings, notes, tasks) as CRM
    interactions, each on its first associated company and contact by id.

    Billing: a ticket whose category or pipeline names billing or invoices, whose subject
    mentions an invoice or billing, or that names an invoice (invoice_number); an engagement
    whose subject does. Dispute: a billing interaction whose category, subject or stage
    mentions a dispute. contact_count of a ticket is the number of engagements logged on it
    (null when none is); engagements do not count contacts. -#}
with

tickets as (

    select * from {{ ref('stg_hubspot__tickets') }}

),

ticket_pipelines as (

    select * from {{ ref('stg_hubspot__ticket_pipelines') }}

),

ticket_stages as (

    select * from {{ ref('stg_hubspot__ticket_pipeline_stages') }}

),

ticket_companies as (

    select * from {{ ref('stg_hubspot__ticket_companies') }}

),

ticket_contacts as (

    select * from {{ ref('stg_hubspot__ticket_contacts') }}

),

ticket_engagements as (

    select * from {{ ref('stg_hubspot__ticket_engagements') }}

),

engagements as (

    select * from {{ ref('stg_hubspot__engagements') }}

),

calls as (

    select * from {{ ref('stg_hubspot__engagement_calls') }}

),

emails as (

    select * from {{ ref('stg_hubspot__engagement_emails') }}

),

meetings as (

    select * from {{ ref('stg_hubspot__engagement_meetings') }}

),

notes as (

    select * from {{ ref('stg_hubspot__engagement_notes') }}

),

tasks as (

    select * from {{ ref('stg_hubspot__engagement_tasks') }}

),

engagement_companies as (

    select * from {{ ref('stg_hubspot__engagement_companies') }}

),

engagement_contacts as (

    select * from {{ ref('stg_hubspot__engagement_contacts') }}

),

ticket_accounts as (

    select ticket_id, min(company_id) as company_id
    from ticket_companies
    group by ticket_id

),

ticket_people as (

    select ticket_id, min(contact_id) as contact_id
    from ticket_contacts
    group by ticket_id

),

ticket_touches as (

    select ticket_id, count(distinct engagement_id) as engagement_count
    from ticket_engagements
    group by ticket_id

),

ticket_texts as (

    select
        tickets.*,
        ticket_pipelines.pipeline_label,
        ticket_stages.stage_label,
        ticket_stages.ticket_state,
        ticket_stages.is_closed as stage_is_closed,
        lower(
            concat_ws(' ', tickets.category, ticket_pipelines.pipeline_label)
        ) as category_text,
        lower(coalesce(tickets.subject, '')) as subject_text

    from tickets

    left join ticket_pipelines
        on tickets.pipeline_id = ticket_pipelines.pipeline_id

    left join ticket_stages
        on tickets.pipeline_id = ticket_stages.pipeline_id
        and tickets.stage_id = ticket_stages.stage_id

),

ticket_interactions as (

    select
        ticket_texts.ticket_id as interaction_id,
        ticket_accounts.company_id as account_id,
        ticket_people.contact_id,
        ticket_texts.owner_id,
        'ticket' as interaction_type,
        ticket_texts.ticket_id as reference_number,
        ticket_texts.subject,
        ticket_texts.category,
        (
            ticket_texts.category_text like '%billing%'
            or ticket_texts.category_text like '%invoice%'
            or ticket_texts.subject_text like '%invoice%'
            or ticket_texts.subject_text like '%billing%'
            or ticket_texts.invoice_number is not null
        ) as is_billing,
        (
            ticket_texts.category_text like '%dispute%'
            or ticket_texts.subject_text like '%dispute%'
            or lower(coalesce(ticket_texts.stage_label, '')) like '%dispute%'
        ) as mentions_dispute,
        ticket_texts.invoice_number,
        coalesce(ticket_texts.stage_label, ticket_texts.ticket_state) as status,
        ticket_texts.priority,
        ticket_texts.source_type as channel,
        coalesce(ticket_texts.stage_is_closed, ticket_texts.closed_at is not null) as is_closed,
        cast(ticket_touches.engagement_count as integer) as contact_count,
        ticket_texts.created_at,
        ticket_texts.closed_at

    from ticket_texts

    left join ticket_accounts
        on ticket_texts.ticket_id = ticket_accounts.ticket_id

    left join ticket_people
        on ticket_texts.ticket_id = ticket_people.ticket_id

    left join ticket_touches
        on ticket_texts.ticket_id = ticket_touches.ticket_id

),

typed_engagements as (

    select
        engagement_id, 'call' as interaction_type, owner_id, title as subject,
        cast(null as {{ dbt.type_string() }}) as category, call_status as status,
        cast(null as {{ dbt.type_string() }}) as priority, 'phone' as channel,
        cast(null as boolean) as is_closed, created_at, occurred_at
    from calls

    union all

    select
        engagement_id, 'email' as interaction_type, owner_id, subject,
        cast(null as {{ dbt.type_string() }}) as category, email_status as status,
        cast(null as {{ dbt.type_string() }}) as priority, 'email' as channel,
        cast(null as boolean) as is_closed, created_at, occurred_at
    from emails

    union all

    select
        engagement_id, 'meeting' as interaction_type, owner_id, title as subject,
        cast(null as {{ dbt.type_string() }}) as category, meeting_outcome as status,
        cast(null as {{ dbt.type_string() }}) as priority, 'meeting' as channel,
        cast(null as boolean) as is_closed, created_at, occurred_at
    from meetings

    union all

    select
        engagement_id, 'note' as interaction_type, owner_id, body_preview as subject,
        cast(null as {{ dbt.type_string() }}) as category,
        cast(null as {{ dbt.type_string() }}) as status,
        cast(null as {{ dbt.type_string() }}) as priority,
        cast(null as {{ dbt.type_string() }}) as channel,
        cast(null as boolean) as is_closed, created_at, occurred_at
    from notes

    union all

    select
        engagement_id, 'task' as interaction_type, owner_id, subject,
        task_type as category, task_status as status, task_priority as priority,
        cast(null as {{ dbt.type_string() }}) as channel,
        task_status = 'COMPLETED' as is_closed, created_at, occurred_at
    from tasks

),

engagement_accounts as (

    select engagement_id, min(company_id) as company_id
    from engagement_companies
    group by engagement_id

),

engagement_people as (

    select engagement_id, min(contact_id) as contact_id
    from engagement_contacts
    group by engagement_id

),

engagement_interactions as (

    select
        typed_engagements.engagement_id as interaction_id,
        engagement_accounts.company_id as account_id,
        engagement_people.contact_id,
        coalesce(typed_engagements.owner_id, engagements.owner_id) as owner_id,
        typed_engagements.interaction_type,
        cast(null as {{ dbt.type_string() }}) as reference_number,
        typed_engagements.subject,
        typed_engagements.category,
        (
            lower(coalesce(typed_engagements.subject, '')) like '%invoice%'
            or lower(coalesce(typed_engagements.subject, '')) like '%billing%'
        ) as is_billing,
        lower(coalesce(typed_engagements.subject, '')) like '%dispute%' as mentions_dispute,
        cast(null as {{ dbt.type_string() }}) as invoice_number,
        typed_engagements.status,
        typed_engagements.priority,
        typed_engagements.channel,
        typed_engagements.is_closed,
        cast(null as integer) as contact_count,
        coalesce(
            typed_engagements.occurred_at,
            engagements.occurred_at,
            typed_engagements.created_at,
            engagements.created_at
        ) as created_at,
        cast(null as {{ dbt.type_timestamp() }}) as closed_at

    from typed_engagements

    left join engagements
        on typed_engagements.engagement_id = engagements.engagement_id

    left join engagement_accounts
        on typed_engagements.engagement_id = engagement_accounts.engagement_id

    left join engagement_people
        on typed_engagements.engagement_id = engagement_people.engagement_id

),

interactions as (

    select * from ticket_interactions

    union all

    select * from engagement_interactions

),

final as (

    select
        interaction_id,
        account_id,
        contact_id,
        owner_id,
        interaction_type,
        reference_number,
        subject,
        category,
        is_billing,
        is_billing and mentions_dispute as is_dispute,
        invoice_number,
        status,
        priority,
        channel,
        is_closed,
        contact_count,
        cast(null as decimal(20, 4)) as promised_amount,
        cast(null as {{ dbt.type_string() }}) as promised_currency_code,
        cast(null as date) as promised_date,
        created_at,
        closed_at

    from interactions

)

select * from final
