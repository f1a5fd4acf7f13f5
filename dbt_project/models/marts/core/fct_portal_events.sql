{#- Every event of the customer portal, on the account and the invoice it concerns, and
    whether it is a customer helping themselves (the self-service KPIs). The client's
    address and the event's detail stay in the audit log (staging). -#}
with

events as (

    select * from {{ ref('stg_q2c_portal__portal_events') }}

),

invoices as (

    select invoice_key, invoice_id, account_key from {{ ref('fct_invoices') }}

),

{#- An ERP invoice id two invoices of one account share names neither. -#}
account_invoices as (

    select
        account_key,
        invoice_id,
        min(invoice_key) as invoice_key,
        count(*) as invoices_with_id

    from invoices

    where account_key is not null

    group by account_key, invoice_id

),

final as (

    select
        events.event_id,
        events.occurred_at,
        events.occurred_on,
        events.kind,
        events.actor_type,
        events.actor,
        events.account_key,
        events.invoice_id,
        case
            when account_invoices.invoices_with_id = 1 then account_invoices.invoice_key
        end as invoice_key,
        events.object_id,
        events.actor_type = 'customer'
            and {{ q2c_in_list('events.kind', q2c_portal_self_service_kinds()) }}
            as is_self_service

    from events

    left join account_invoices
        on events.account_key = account_invoices.account_key
        and events.invoice_id = account_invoices.invoice_id

)

select * from final
