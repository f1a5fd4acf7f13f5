with

outbox as (

    select * from {{ source('q2c_delivery', 'outbox') }}

),

planned as (

    select * from {{ source('q2c_delivery', 'outbox_payloads') }}

),

events as (

    select * from {{ source('q2c_delivery', 'delivery_events') }}

    where attempt_key is not null

),

attempt_events as (

    select
        attempt_key,
        min(occurred_at) as first_attempt_at,
        max(case when event = 'sent' then occurred_at end) as sent_at,
        max(case when event = 'bounced' then occurred_at end) as bounced_at,
        max(case when event = 'failed_over' then occurred_at end) as failed_over_at,
        max(case when event = 'dead_letter' then occurred_at end) as dead_lettered_at,
        cast(sum(case when event = 'sent' then 1 else 0 end) as integer) as send_count,
        cast(sum(case when event = 'retry_scheduled' then 1 else 0 end) as integer)
            as retry_count,
        cast(sum(case when event = 'resent_in_doubt' then 1 else 0 end) as integer)
            as resent_in_doubt_count

    from events

    where event <> 'requeued'

    group by attempt_key

),

{#- The newest event decides where a channel attempt stands: a send followed by a bounce
    and a failover is failed over; a requeued dead letter is open again. -#}
last_events as (

    select
        attempt_key,
        event as last_event,
        row_number() over (partition by attempt_key order by seq desc) as recency

    from events

),

last_sends as (

    select
        attempt_key,
        location as sent_location,
        reference as sent_reference,
        row_number() over (partition by attempt_key order by seq desc) as recency

    from events

    where event = 'sent'

),

{#- A trading partner's 997 is recorded on the document, for the channel it answered. -#}
acknowledgements as (

    select
        document_key,
        channel,
        max(case when event = 'acknowledged' then occurred_at end) as acknowledged_at,
        max(case when event = 'ack_rejected' then occurred_at end) as ack_rejected_at

    from {{ source('q2c_delivery', 'delivery_events') }}

    where event in ('acknowledged', 'ack_rejected')

    group by document_key, channel

),

final as (

    select
        planned.attempt_key as delivery_key,
        planned.document_key,
        outbox.invoice_id,
        outbox.invoice_number,
        outbox.kind as document_kind,
        outbox.document_id,
        outbox.account_key,
        planned.channel,
        planned.position as plan_position,
        planned.recipient,
        outbox.queued_at,
        attempt_events.first_attempt_at,
        attempt_events.sent_at,
        last_sends.sent_location,
        last_sends.sent_reference,
        attempt_events.bounced_at,
        attempt_events.failed_over_at,
        attempt_events.dead_lettered_at,
        attempt_events.send_count,
        attempt_events.retry_count,
        attempt_events.resent_in_doubt_count,
        acknowledgements.acknowledged_at,
        acknowledgements.ack_rejected_at,
        case last_events.last_event
            when 'sent' then 'sent'
            when 'failed_over' then 'failed_over'
            when 'dead_letter' then 'dead_letter'
            when 'bounced' then 'bounced'
            else case when outbox.status = 'cancelled' then 'cancelled' else 'pending' end
        end as channel_status,
        coalesce(last_events.last_event = 'sent', false) as is_delivered,
        outbox.status as document_status

    from planned

    inner join attempt_events
        on planned.attempt_key = attempt_events.attempt_key

    inner join outbox
        on planned.document_key = outbox.document_key

    left join last_events
        on planned.attempt_key = last_events.attempt_key
        and last_events.recency = 1

    left join last_sends
        on planned.attempt_key = last_sends.attempt_key
        and last_sends.recency = 1

    left join acknowledgements
        on planned.document_key = acknowledgements.document_key
        and planned.channel = acknowledgements.channel

)

select * from final
