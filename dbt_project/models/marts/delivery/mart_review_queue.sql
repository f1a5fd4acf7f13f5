{#- The review queue as of var as_of_timestamp ('YYYY-MM-DD HH:MM:SS', UTC; default: when
    the run started). A document decided after that moment still counts as waiting. -#}
{%- set as_of_value = q2c_as_of_timestamp() -%}

with

queue as (

    select * from {{ source('q2c_review', 'review_queue') }}

),

as_of as (

    select cast('{{ as_of_value }}' as timestamp) as as_of_timestamp

),

waiting as (

    select
        queue.*,
        as_of.as_of_timestamp

    from queue

    cross join as_of

    where
        queue.queued_at <= as_of.as_of_timestamp
        and (
            queue.status = 'pending'
            or queue.decided_at > as_of.as_of_timestamp
        )

),

final as (

    select
        invoice_id,
        invoice_number,
        document_kind,
        account_key,
        account_name,
        currency,
        total_amount,
        issue_date,
        reasons,
        rule_ids,
        queued_at,
        sla_hours,
        sla_due_at,
        as_of_timestamp,
        cast(
            {{ q2c_ratio(dbt.datediff('queued_at', 'as_of_timestamp', 'second'), 3600) }}
            as decimal(12, 2)
        ) as age_hours,
        cast(
            {{ q2c_ratio(dbt.datediff('as_of_timestamp', 'sla_due_at', 'second'), 3600) }}
            as decimal(12, 2)
        ) as hours_to_sla,
        as_of_timestamp > sla_due_at as is_sla_breached,
        policy_version

    from waiting

)

select * from final
