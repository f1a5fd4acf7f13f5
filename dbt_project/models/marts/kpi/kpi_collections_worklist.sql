{#- Whom collections should call first: open receivables per account and currency, ranked
    by a documented risk score (days past due, payment history, broken promises, amount),
    with who owns the account, what is already going on with it and why dunning is
    suppressed. Formula, grain and caveats: _kpi__models.yml. -#}
{%- set large_amount = var('collections_large_overdue_amount', 10000) %}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

interactions as (

    select * from {{ ref('fct_interactions') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

allocations as (

    select * from {{ ref('fct_payment_allocations') }}

),

payments as (

    select * from {{ ref('fct_payments') }}

),

promises as (

    select * from {{ ref('fct_promises_to_pay') }}

),

dunning as (

    select * from {{ ref('mart_dunning_actions') }}

),

{#- Same open items as kpi_ar_aging: the ERP balance of invoices issued by the as-of
    date. -#}
open_items as (

    select
        account_key,
        currency,
        coalesce(due_date, issue_date) as due_on,
        balance_amount,
        open_amount_reporting,
        coalesce(days_overdue, 0) as days_overdue

    from invoices

    where balance_amount > 0
        and (issue_date is null or issue_date <= {{ q2c_as_of_date() }})

),

account_items as (

    select
        account_key,
        currency,
        count(*) as open_invoice_count,
        sum(balance_amount) as open_amount,
        count(case when days_overdue > 0 then 1 end) as overdue_invoice_count,
        sum(case when days_overdue > 0 then balance_amount else 0 end) as overdue_amount,
        sum(case
            when days_overdue > 0 then open_amount_reporting else 0
        end) as overdue_amount_reporting,
        max(days_overdue) as max_days_overdue,
        min(due_on) as oldest_due_date

    from open_items

    group by account_key, currency

),

{#- Interactions known on the as-of date; a case closed after it was still open then. -#}
dated_interactions as (

    select
        account_key,
        interaction_type,
        is_billing,
        is_dispute,
        created_at,
        cast(created_at as date) as created_on,
        case
            when not coalesce(is_closed, false) then false
            when closed_at is null then true
            else cast(closed_at as date) <= {{ q2c_as_of_date() }}
        end as was_closed

    from interactions

    where account_key is not null
        and cast(created_at as date) <= {{ q2c_as_of_date() }}

),

account_interactions as (

    select
        account_key,
        count(case
            when is_billing and interaction_type in ('case', 'ticket') and not was_closed
                then 1
        end) as open_billing_case_count,
        count(case when is_dispute and not was_closed then 1 end) as open_dispute_count,
        count(case
            when interaction_type in ('case', 'ticket') and not was_closed then 1
        end) as open_support_case_count,
        max(created_on) as last_interaction_date

    from dated_interactions

    group by account_key

),

last_interactions as (

    select
        account_key,
        interaction_type as last_interaction_type,
        row_number() over (
            partition by account_key
            order by created_at desc, interaction_type
        ) as recency

    from dated_interactions

),

{#- Payment history: each invoice the ERP shows as paid (balance 0 or less), paid by the
    as-of date, is late by the days from its due date to its last cash payment (0 when on
    time). -#}
invoice_paid_on as (

    select
        allocations.invoice_key,
        max(coalesce(payments.payment_date, allocations.allocation_date)) as paid_on

    from allocations

    left join payments
        on allocations.payment_key = payments.payment_key

    where allocations.allocation_type = 'payment'

    group by allocations.invoice_key

),

paid_invoices as (

    select
        invoices.account_key,
        greatest(
            {{ q2c_days_between('coalesce(invoices.due_date, invoices.issue_date)',
                                'invoice_paid_on.paid_on') }},
            0
        ) as days_late

    from invoices

    inner join invoice_paid_on
        on invoices.invoice_key = invoice_paid_on.invoice_key

    where invoices.account_key is not null
        and invoices.balance_amount <= 0
        and invoice_paid_on.paid_on <= {{ q2c_as_of_date() }}

),

account_history as (

    select
        account_key,
        count(*) as paid_invoice_count,
        cast(
            round(cast(cast(sum(days_late) as decimal(18, 6)) / count(*) as decimal(18, 6)), 2)
            as decimal(10, 2)
        ) as avg_days_late

    from paid_invoices

    group by account_key

),

account_promises as (

    select
        account_key,
        count(*) as promise_count,
        count(case when promise_status = 'kept' then 1 end) as kept_promise_count,
        count(case when promise_status = 'broken' then 1 end) as broken_promise_count

    from promises

    group by account_key

),

{#- The current promise of each row: the earliest promised day among the account's current
    promises in the row's currency or in none. -#}
row_promises as (

    select
        account_items.account_key,
        account_items.currency,
        promises.promised_amount,
        promises.promised_currency,
        promises.promised_date,
        row_number() over (
            partition by account_items.account_key, account_items.currency
            order by promises.promised_date, promises.promise_key
        ) as earliest

    from account_items

    inner join promises
        on account_items.account_key = promises.account_key
        and (
            promises.promised_currency is null
            or promises.promised_currency = account_items.currency
        )

    where promises.promise_status = 'current'

),

{#- Dunning of the row's invoices (mart_dunning_actions): reminders due, overdue invoices
    whose dunning is suppressed, the furthest stage reached. -#}
dunning_invoices as (

    select
        coalesce(account_key, '') as account_match,
        currency,
        stage_order,
        stage_name,
        days_past_due,
        dunning_action,
        suppressed_reason,
        coalesce(has_open_portal_dispute, false) as has_open_portal_dispute,
        case suppressed_reason
            when 'open_dispute' then 1
            when 'portal_dispute' then 2
            when 'open_billing_case' then 3
            when 'promise_to_pay' then 4
            when 'owner_hold' then 5
        end as reason_order

    from dunning

),

row_dunning as (

    select
        account_match,
        currency,
        count(case
            when dunning_action in ('remind', 'hand_over') then 1
        end) as reminders_due_count,
        count(case when days_past_due > 0 then 1 end) as dunning_overdue_count,
        count(case
            when days_past_due > 0 and suppressed_reason is not null then 1
        end) as suppressed_invoice_count,
        min(case when days_past_due > 0 then reason_order end) as first_reason_order,
        count(case when has_open_portal_dispute then 1 end) as portal_disputed_invoice_count,
        max(stage_order) as furthest_stage_order

    from dunning_invoices

    group by account_match, currency

),

row_stages as (

    select distinct
        account_match,
        currency,
        stage_order,
        stage_name

    from dunning_invoices

    where stage_order is not null

),

joined as (

    select
        account_items.account_key,
        {{ q2c_as_of_date() }} as as_of_date,
        accounts.account_name,
        accounts.owner_name,
        accounts.segment,
        accounts.parent_account_key,
        parents.account_name as parent_account_name,
        account_items.currency,
        account_items.open_invoice_count,
        cast(account_items.open_amount as decimal(20, 4)) as open_amount,
        account_items.overdue_invoice_count,
        cast(account_items.overdue_amount as decimal(20, 4)) as overdue_amount,
        cast(account_items.max_days_overdue as {{ dbt.type_int() }}) as max_days_overdue,
        account_items.oldest_due_date,
        coalesce(account_interactions.open_billing_case_count, 0) as open_billing_case_count,
        coalesce(account_interactions.open_dispute_count, 0) as open_dispute_count,
        account_interactions.last_interaction_date,
        accounts.owner_email,
        accounts.billing_contact_name,
        parents.owner_name as parent_owner_name,
        coalesce(account_interactions.open_support_case_count, 0) as open_support_case_count,
        last_interactions.last_interaction_type,
        cast(account_items.overdue_amount_reporting as decimal(20, 4))
            as overdue_amount_reporting,
        coalesce(account_history.paid_invoice_count, 0) as paid_invoice_count,
        account_history.avg_days_late,
        coalesce(account_promises.promise_count, 0) as promise_count,
        coalesce(account_promises.kept_promise_count, 0) as kept_promise_count,
        coalesce(account_promises.broken_promise_count, 0) as broken_promise_count,
        row_promises.promised_amount as current_promise_amount,
        row_promises.promised_currency as current_promise_currency,
        row_promises.promised_date as current_promise_date,
        row_stages.stage_name as dunning_stage,
        coalesce(row_dunning.reminders_due_count, 0) as reminders_due_count,
        coalesce(row_dunning.suppressed_invoice_count, 0) as suppressed_invoice_count,
        case
            when row_dunning.dunning_overdue_count > 0
                and row_dunning.suppressed_invoice_count = row_dunning.dunning_overdue_count
                then case row_dunning.first_reason_order
                    when 1 then 'open_dispute'
                    when 2 then 'portal_dispute'
                    when 3 then 'open_billing_case'
                    when 4 then 'promise_to_pay'
                    when 5 then 'owner_hold'
                end
        end as suppressed_reason,
        coalesce(row_dunning.portal_disputed_invoice_count, 0)
            as portal_disputed_invoice_count

    from account_items

    left join accounts
        on account_items.account_key = accounts.account_key

    left join accounts as parents
        on accounts.parent_account_key = parents.account_key

    left join account_interactions
        on account_items.account_key = account_interactions.account_key

    left join last_interactions
        on account_items.account_key = last_interactions.account_key
        and last_interactions.recency = 1

    left join account_history
        on account_items.account_key = account_history.account_key

    left join account_promises
        on account_items.account_key = account_promises.account_key

    left join row_promises
        on account_items.account_key = row_promises.account_key
        and account_items.currency = row_promises.currency
        and row_promises.earliest = 1

    left join row_dunning
        on coalesce(account_items.account_key, '') = row_dunning.account_match
        and account_items.currency = row_dunning.currency

    left join row_stages
        on row_dunning.account_match = row_stages.account_match
        and row_dunning.currency = row_stages.currency
        and row_dunning.furthest_stage_order = row_stages.stage_order

),

{#- Risk score, 0 to 100 (formula in _kpi__models.yml): lateness up to 40 points, payment
    history up to 25, a broken promise 15, the overdue amount in the reporting currency up
    to 20. Each part is rounded to 6 decimals before they are added, so every warehouse
    rounds the score the same way. -#}
points as (

    select
        *,
        cast(40 * least(max_days_overdue, 90) / 90.0 as decimal(18, 6)) as lateness_points,
        cast(
            25 * least(coalesce(avg_days_late, 0), 60) / 60.0 as decimal(18, 6)
        ) as history_points,
        cast(
            case when broken_promise_count > 0 then 15 else 0 end as decimal(18, 6)
        ) as promise_points,
        cast(
            20 * least(
                coalesce(overdue_amount_reporting, 0),
                cast({{ large_amount }} as decimal(20, 4))
            ) / cast({{ large_amount }} as decimal(20, 4))
            as decimal(18, 6)
        ) as exposure_points

    from joined

),

scored as (

    select
        *,
        cast(
            round(lateness_points + history_points + promise_points + exposure_points, 2)
            as decimal(5, 2)
        ) as risk_score

    from points

),

ranked as (

    select
        *,
        row_number() over (
            order by
                case
                    when overdue_invoice_count > 0 and suppressed_reason is null then 0
                    when overdue_invoice_count > 0 then 1
                    else 2
                end,
                risk_score desc,
                coalesce(overdue_amount_reporting, 0) desc,
                max_days_overdue desc,
                coalesce(account_key, ''),
                currency
        ) as priority_rank

    from scored

),

{#- What the reason code means, for people reading the list. -#}
final as (

    select
        *,
        case suppressed_reason
            when 'open_dispute' then 'dispute open in the CRM'
            when 'portal_dispute' then 'portal dispute open'
            when 'open_billing_case' then 'billing case open'
            when 'promise_to_pay' then 'promise to pay'
            when 'owner_hold' then 'held by the account owner'
        end as suppressed_reason_text

    from ranked

)

select * from final
