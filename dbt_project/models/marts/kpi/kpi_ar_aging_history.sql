{#- Receivables aging as they stood at each month end and on var as_of_date, rebuilt from
    dated records only. Formula, grain and caveats: _kpi__models.yml. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

allocations as (

    select * from {{ ref('fct_payment_allocations') }}

),

credit_notes as (

    select * from {{ ref('fct_credit_notes') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

dated_invoices as (

    select
        invoice_key,
        account_key,
        currency,
        issue_date,
        coalesce(due_date, issue_date) as due_on,
        total_amount

    from invoices

    where issue_date <= {{ q2c_as_of_date() }}
        and currency is not null

),

months as (

    {{ q2c_month_spine(
        '(select min(issue_date) from dated_invoices)',
        q2c_as_of_date()
    ) }}

),

{#- One snapshot per month end; the month that holds the as-of date ends on it. -#}
snapshots as (

    select
        least(
            {{ dbt.last_day('month_start', 'month') }},
            {{ q2c_as_of_date() }}
        ) as snapshot_date

    from months

),

{#- A credit note that names its invoice settles it on its issue date, unless the ERP also
    applied it through an allocation (then the allocation is counted instead). -#}
applied_credit_notes as (

    select distinct credit_note_key

    from allocations

    where credit_note_key is not null

),

{#- Cash and credit applied to an invoice settle it; a refund or chargeback gives the cash
    back and reopens it (as in fct_invoices.paid_amount); a gateway fee settles nothing. -#}
settlements as (

    select
        invoice_key,
        allocation_date as settled_on,
        case
            when allocation_type in ('refund', 'chargeback') then -abs(amount)
            else amount
        end as amount

    from allocations

    where invoice_key is not null
        and allocation_type in ('payment', 'credit_note', 'refund', 'chargeback')
        and allocation_date <= {{ q2c_as_of_date() }}

    union all

    select
        credit_notes.invoice_key,
        credit_notes.issue_date as settled_on,
        credit_notes.total_amount as amount

    from credit_notes

    left join applied_credit_notes
        on credit_notes.credit_note_key = applied_credit_notes.credit_note_key

    where credit_notes.invoice_key is not null
        and applied_credit_notes.credit_note_key is null
        and credit_notes.issue_date <= {{ q2c_as_of_date() }}

),

{#- Where each invoice ends up by the as-of date: one that is settled by then cannot be
    open at any snapshot after its last settlement, so it is paired with fewer snapshots. -#}
invoice_outcomes as (

    select
        dated_invoices.invoice_key,
        dated_invoices.total_amount - coalesce(sum(settlements.amount), 0) as final_open_amount,
        max(settlements.settled_on) as last_settled_on

    from dated_invoices

    left join settlements
        on dated_invoices.invoice_key = settlements.invoice_key

    group by dated_invoices.invoice_key, dated_invoices.total_amount

),

candidates as (

    select
        snapshots.snapshot_date,
        dated_invoices.invoice_key,
        dated_invoices.account_key,
        dated_invoices.currency,
        dated_invoices.due_on,
        dated_invoices.total_amount

    from snapshots

    inner join dated_invoices
        on dated_invoices.issue_date <= snapshots.snapshot_date

    inner join invoice_outcomes
        on dated_invoices.invoice_key = invoice_outcomes.invoice_key

    where invoice_outcomes.final_open_amount > 0
        or invoice_outcomes.last_settled_on > snapshots.snapshot_date

),

open_at_snapshot as (

    select
        candidates.snapshot_date,
        candidates.account_key,
        candidates.currency,
        {{ q2c_days_between('candidates.due_on', 'candidates.snapshot_date') }}
            as days_past_due,
        candidates.total_amount - coalesce(sum(settlements.amount), 0) as open_amount

    from candidates

    left join settlements
        on candidates.invoice_key = settlements.invoice_key
        and settlements.settled_on <= candidates.snapshot_date

    group by
        candidates.snapshot_date,
        candidates.invoice_key,
        candidates.account_key,
        candidates.currency,
        candidates.due_on,
        candidates.total_amount

),

bucketed as (

    select
        snapshot_date,
        account_key,
        currency,
        sum(case when days_past_due <= 0 then open_amount else 0 end) as current_amount,
        sum(case
            when days_past_due between 1 and 30 then open_amount else 0
        end) as days_1_30_amount,
        sum(case
            when days_past_due between 31 and 60 then open_amount else 0
        end) as days_31_60_amount,
        sum(case
            when days_past_due between 61 and 90 then open_amount else 0
        end) as days_61_90_amount,
        sum(case when days_past_due > 90 then open_amount else 0 end) as days_over_90_amount,
        sum(open_amount) as total_open_amount,
        count(*) as open_invoice_count

    from open_at_snapshot

    where open_amount > 0

    group by snapshot_date, account_key, currency

),

final as (

    select
        bucketed.snapshot_date as as_of_date,
        bucketed.account_key,
        accounts.account_name,
        bucketed.currency,
        cast(bucketed.current_amount as decimal(20, 4)) as current_amount,
        cast(bucketed.days_1_30_amount as decimal(20, 4)) as days_1_30_amount,
        cast(bucketed.days_31_60_amount as decimal(20, 4)) as days_31_60_amount,
        cast(bucketed.days_61_90_amount as decimal(20, 4)) as days_61_90_amount,
        cast(bucketed.days_over_90_amount as decimal(20, 4)) as days_over_90_amount,
        cast(bucketed.total_open_amount as decimal(20, 4)) as total_open_amount,
        bucketed.open_invoice_count

    from bucketed

    left join accounts
        on bucketed.account_key = accounts.account_key

)

select * from final
