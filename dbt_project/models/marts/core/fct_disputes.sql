{#- Every dispute of an invoice, whichever channel it came through: CRM disputes (a
    Salesforce 'Billing Dispute' case, a HubSpot dispute ticket; fct_interactions) and the
    disputes customers open in the portal. Formula, grain and caveats: _portal__models.yml. -#}
with

interactions as (

    select * from {{ ref('fct_interactions') }}

),

portal_disputes as (

    select * from {{ ref('stg_q2c_portal__portal_disputes') }}

),

invoices as (

    select invoice_key, invoice_id, account_key, currency from {{ ref('fct_invoices') }}

),

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

crm as (

    select
        interactions.interaction_key as dispute_key,
        'crm' as channel,
        interactions.source_system,
        interactions.source_id,
        cast(null as bigint) as dispute_number,
        interactions.account_key,
        interactions.invoice_key,
        invoices.invoice_id,
        interactions.invoice_number,
        invoices.currency,
        cast(null as {{ dbt.type_string() }}) as reason_code,
        cast(null as {{ dbt.type_int() }}) as line_number,
        case when interactions.is_closed then 'resolved' else 'open' end as status,
        cast(null as {{ dbt.type_string() }}) as resolution,
        interactions.created_at as opened_at,
        case when interactions.is_closed then interactions.closed_at end as resolved_at,
        cast(interactions.contact_count as {{ dbt.type_int() }}) as staff_step_count,
        cast(null as decimal(20, 4)) as credit_amount

    from interactions

    left join invoices
        on interactions.invoice_key = invoices.invoice_key

    where interactions.is_dispute

),

portal as (

    select
        {{ q2c_surrogate_key(["'q2c_portal'", 'portal_disputes.dispute_id']) }}
            as dispute_key,
        'portal' as channel,
        'q2c_portal' as source_system,
        portal_disputes.dispute_id as source_id,
        portal_disputes.dispute_number,
        portal_disputes.account_key,
        coalesce(
            portal_disputes.invoice_key,
            case when account_invoices.invoices_with_id = 1 then account_invoices.invoice_key end
        ) as invoice_key,
        portal_disputes.invoice_id,
        portal_disputes.invoice_number,
        portal_disputes.currency,
        portal_disputes.reason_code,
        portal_disputes.line_number,
        portal_disputes.status,
        portal_disputes.resolution,
        portal_disputes.opened_at,
        portal_disputes.resolved_at,
        portal_disputes.staff_step_count,
        portal_disputes.credit_amount

    from portal_disputes

    left join account_invoices
        on portal_disputes.account_key = account_invoices.account_key
        and portal_disputes.invoice_id = account_invoices.invoice_id

),

unioned as (

    select * from crm

    union all

    select * from portal

),

final as (

    select
        dispute_key,
        channel,
        source_system,
        source_id,
        dispute_number,
        account_key,
        invoice_key,
        invoice_id,
        invoice_number,
        currency,
        reason_code,
        line_number,
        status,
        resolution,
        opened_at,
        resolved_at,
        staff_step_count,
        case
            when status <> 'resolved' or staff_step_count is null then null
            else staff_step_count <= 1
        end as is_first_contact_resolution,
        credit_amount

    from unioned

)

select * from final
