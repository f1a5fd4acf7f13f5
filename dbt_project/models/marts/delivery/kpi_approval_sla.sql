{#- Approval SLA per month of queued_at, as of var as_of_timestamp ('YYYY-MM-DD HH:MM:SS',
    UTC; default: when the run started). Formula and caveats: _review__models.yml. -#}
{%- set as_of_value = q2c_as_of_timestamp() -%}

with

queue as (

    select * from {{ source('q2c_review', 'review_queue') }}

),

as_of as (

    select cast('{{ as_of_value }}' as timestamp) as as_of_timestamp

),

{#- The state each document was in at the as-of moment: a decision taken later did not
    exist yet, so the document was still pending then. -#}
state_as_of as (

    select
        queue.invoice_id,
        cast({{ dbt.date_trunc('month', 'queue.queued_at') }} as date) as month_start,
        queue.queued_at,
        queue.sla_due_at,
        case
            when queue.status <> 'pending' and queue.decided_at <= as_of.as_of_timestamp
                then queue.status
            else 'pending'
        end as status_as_of,
        case
            when queue.status <> 'pending' and queue.decided_at <= as_of.as_of_timestamp
                then queue.decided_at
        end as decided_at,
        as_of.as_of_timestamp

    from queue

    cross join as_of

    where queue.queued_at <= as_of.as_of_timestamp

),

classified as (

    select
        *,
        status_as_of = 'approved' and decided_at <= sla_due_at as is_approved_within_sla,
        status_as_of = 'pending' and as_of_timestamp > sla_due_at as is_pending_past_sla,
        case
            when status_as_of = 'approved'
                then {{ dbt.datediff('queued_at', 'decided_at', 'second') }}
        end as seconds_to_approval

    from state_as_of

),

monthly as (

    select
        month_start,
        max(as_of_timestamp) as as_of_timestamp,
        count(*) as queued_count,
        count(case when status_as_of = 'approved' then 1 end) as approved_count,
        count(case when is_approved_within_sla then 1 end) as approved_within_sla_count,
        count(case when status_as_of = 'rejected' then 1 end) as rejected_count,
        count(case when status_as_of = 'pending' then 1 end) as pending_count,
        count(case when is_pending_past_sla then 1 end) as pending_past_sla_count,
        sum(seconds_to_approval) as approval_seconds

    from classified

    group by month_start

),

final as (

    select
        month_start,
        as_of_timestamp,
        queued_count,
        approved_count + rejected_count as decided_count,
        approved_count,
        approved_within_sla_count,
        approved_count - approved_within_sla_count as approved_late_count,
        rejected_count,
        pending_count,
        pending_past_sla_count,
        approved_count + pending_past_sla_count as sla_measured_count,
        cast(
            round(
                {{ q2c_ratio('approved_within_sla_count',
                             'nullif(approved_count + pending_past_sla_count, 0)') }},
                4
            ) as decimal(7, 4)
        ) as share_approved_within_sla,
        cast(
            {{ q2c_ratio('approval_seconds', 'nullif(approved_count * 3600, 0)') }}
            as decimal(12, 2)
        ) as avg_hours_to_approval

    from monthly

)

select * from final
