with

outbox as (

    select * from {{ source('q2c_delivery', 'outbox') }}

),

deliveries as (

    select * from {{ ref('fct_deliveries') }}

),

tried as (

    select
        document_key,
        count(*) as channels_tried,
        max(dead_lettered_at) as dead_lettered_at,
        max(bounced_at) as last_bounced_at

    from deliveries

    group by document_key

),

final as (

    select
        outbox.document_key,
        outbox.invoice_id,
        outbox.invoice_number,
        outbox.kind as document_kind,
        outbox.document_id,
        outbox.account_key,
        outbox.plan,
        tried.channels_tried,
        outbox.attempts,
        outbox.last_error,
        outbox.queued_at,
        tried.dead_lettered_at,
        tried.last_bounced_at

    from outbox

    left join tried
        on outbox.document_key = tried.document_key

    where outbox.status = 'dead_letter'

)

select * from final
