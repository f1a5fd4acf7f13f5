{#- What dunning owes each open invoice on the as-of date: the stage it has reached, and
    whether that stage is suppressed and why. Formula, grain and caveats:
    _dunning__models.yml. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

interactions as (

    select * from {{ ref('fct_interactions') }}

),

promises as (

    select * from {{ ref('fct_promises_to_pay') }}

),

holds as (

    select * from {{ ref('stg_q2c_collections__collection_holds') }}

),

disputes as (

    select * from {{ ref('fct_disputes') }}

),

stages as (

    select * from {{ ref('dunning_stages') }}

),

{#- The open items of kpi_ar_aging. Due dates are days in the seller's time zone, and so is
    the as-of date q2c passes: an invoice due on the as-of date is 0 days past due. -#}
open_invoices as (

    select
        invoice_key,
        invoice_id,
        source_system,
        invoice_number,
        account_key,
        currency,
        balance_amount as open_amount,
        issue_date,
        coalesce(due_date, issue_date) as due_date,
        case
            when coalesce(due_date, issue_date) < {{ q2c_as_of_date() }}
                then {{ q2c_days_between('coalesce(due_date, issue_date)',
                                         q2c_as_of_date()) }}
            else 0
        end as days_past_due

    from invoices

    where balance_amount > 0
        and (issue_date is null or issue_date <= {{ q2c_as_of_date() }})

),

{#- The last stage whose day the invoice has reached; none before the first. -#}
staged as (

    select
        open_invoices.*,
        stages.stage_order,
        stages.stage_name,
        stages.days_past_due as stage_days_past_due,
        stages.audience as stage_audience,
        row_number() over (
            partition by open_invoices.invoice_key
            order by stages.stage_order desc
        ) as recency

    from open_invoices

    left join stages
        on open_invoices.days_past_due >= stages.days_past_due

),

{#- Disputes, and billing cases or tickets, open on the as-of date: created by then and not
    closed by then (a case closed later was still open). -#}
open_cases as (

    select
        account_key,
        invoice_key,
        invoice_number,
        is_dispute

    from interactions

    where account_key is not null
        and cast(created_at as date) <= {{ q2c_as_of_date() }}
        and (is_dispute or (is_billing and interaction_type in ('case', 'ticket')))
        and not (
            case
                when not coalesce(is_closed, false) then false
                when closed_at is null then true
                else cast(closed_at as date) <= {{ q2c_as_of_date() }}
            end
        )

),

{#- A case that names an invoice (by key, else by number on the same account) concerns
    that invoice; one that names none concerns every invoice of its account. -#}
invoice_cases as (

    select
        open_invoices.invoice_key,
        count(case when open_cases.is_dispute then 1 end) as open_dispute_count,
        count(case when not open_cases.is_dispute then 1 end) as open_billing_case_count

    from open_invoices

    inner join open_cases
        on open_invoices.account_key = open_cases.account_key
        and (
            open_cases.invoice_key = open_invoices.invoice_key
            or (
                open_cases.invoice_key is null
                and open_cases.invoice_number = open_invoices.invoice_number
            )
            or (open_cases.invoice_key is null and open_cases.invoice_number is null)
        )

    group by open_invoices.invoice_key

),

{#- Disputes the customer opened in the portal, open on the as-of date: raised by then and
    not resolved by then. They name their invoice. -#}
invoice_portal_disputes as (

    select
        invoice_key,
        count(*) as open_portal_dispute_count

    from disputes

    where channel = 'portal'
        and invoice_key is not null
        and cast(opened_at as date) <= {{ q2c_as_of_date() }}
        and (resolved_at is null or cast(resolved_at as date) > {{ q2c_as_of_date() }})

    group by invoice_key

),

{#- Current promises to pay, matched like cases; one naming no invoice covers the
    account's invoices in its currency (all of them when it names none). The earliest
    promised day is shown. -#}
invoice_promises as (

    select
        open_invoices.invoice_key,
        promises.promise_key,
        promises.promised_amount,
        promises.promised_currency,
        promises.promised_date,
        row_number() over (
            partition by open_invoices.invoice_key
            order by promises.promised_date, promises.promise_key
        ) as earliest

    from open_invoices

    inner join promises
        on open_invoices.account_key = promises.account_key
        and (
            promises.invoice_key = open_invoices.invoice_key
            or (
                promises.invoice_key is null
                and promises.invoice_number = open_invoices.invoice_number
            )
            or (
                promises.invoice_key is null
                and promises.invoice_number is null
                and (
                    promises.promised_currency is null
                    or promises.promised_currency = open_invoices.currency
                )
            )
        )

    where promises.promise_status = 'current'

),

{#- Holds in force on the as-of date: set by then, not past their last day, not released
    by then. -#}
account_holds as (

    select
        account_key,
        hold_id,
        held_until,
        reason,
        held_by,
        row_number() over (
            partition by account_key
            order by held_until desc, hold_id desc
        ) as latest

    from holds

    where held_on <= {{ q2c_as_of_date() }}
        and held_until >= {{ q2c_as_of_date() }}
        and (released_on is null or released_on > {{ q2c_as_of_date() }})

),

flagged as (

    select
        staged.*,
        coalesce(invoice_cases.open_dispute_count, 0) > 0 as has_open_dispute,
        coalesce(invoice_portal_disputes.open_portal_dispute_count, 0) > 0
            as has_open_portal_dispute,
        coalesce(invoice_cases.open_billing_case_count, 0) > 0 as has_open_billing_case,
        invoice_promises.promise_key is not null as has_current_promise,
        invoice_promises.promise_key,
        invoice_promises.promised_amount,
        invoice_promises.promised_currency,
        invoice_promises.promised_date,
        account_holds.hold_id is not null as is_on_hold,
        account_holds.hold_id,
        account_holds.held_until,
        account_holds.reason as hold_reason,
        account_holds.held_by

    from staged

    left join invoice_cases
        on staged.invoice_key = invoice_cases.invoice_key

    left join invoice_portal_disputes
        on staged.invoice_key = invoice_portal_disputes.invoice_key

    left join invoice_promises
        on staged.invoice_key = invoice_promises.invoice_key
        and invoice_promises.earliest = 1

    left join account_holds
        on staged.account_key = account_holds.account_key
        and account_holds.latest = 1

    where staged.recency = 1

),

{#- One reason per invoice, the first that applies in this order. -#}
reasoned as (

    select
        *,
        case
            when has_open_dispute then 'open_dispute'
            when has_open_portal_dispute then 'portal_dispute'
            when has_open_billing_case then 'open_billing_case'
            when has_current_promise then 'promise_to_pay'
            when is_on_hold then 'owner_hold'
        end as suppressed_reason

    from flagged

),

final as (

    select
        reasoned.invoice_key,
        reasoned.invoice_id,
        reasoned.source_system,
        reasoned.invoice_number,
        reasoned.account_key,
        accounts.account_name,
        accounts.owner_name,
        accounts.owner_email,
        accounts.billing_contact_name,
        accounts.language,
        reasoned.currency,
        cast(reasoned.open_amount as decimal(20, 4)) as open_amount,
        reasoned.issue_date,
        reasoned.due_date,
        {{ q2c_as_of_date() }} as as_of_date,
        cast(reasoned.days_past_due as {{ dbt.type_int() }}) as days_past_due,
        cast(reasoned.stage_order as {{ dbt.type_int() }}) as stage_order,
        reasoned.stage_name,
        cast(reasoned.stage_days_past_due as {{ dbt.type_int() }}) as stage_days_past_due,
        reasoned.stage_audience,
        reasoned.has_open_dispute,
        reasoned.has_open_portal_dispute,
        reasoned.has_open_billing_case,
        reasoned.has_current_promise,
        reasoned.promise_key,
        reasoned.promised_amount,
        reasoned.promised_currency,
        reasoned.promised_date,
        reasoned.is_on_hold,
        reasoned.hold_id,
        reasoned.held_until,
        reasoned.hold_reason,
        reasoned.held_by,
        reasoned.suppressed_reason,
        reasoned.suppressed_reason is not null as is_suppressed,
        case
            when reasoned.stage_name is null then 'not_due'
            when reasoned.suppressed_reason is not null then 'suppressed'
            when reasoned.stage_audience = 'account_owner' then 'hand_over'
            else 'remind'
        end as dunning_action

    from reasoned

    left join accounts
        on reasoned.account_key = accounts.account_key

)

select * from final
