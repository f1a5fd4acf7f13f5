{#- Where collections should start: open receivables per account and currency with who owns
    the account and what is already going on with it. Formula, grain and caveats:
    _kpi__models.yml. -#}
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

{#- Same open items as kpi_ar_aging: the ERP balance of invoices issued by the as-of
    date. -#}
open_items as (

    select
        account_key,
        currency,
        coalesce(due_date, issue_date) as due_on,
        balance_amount,
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
        max(created_on) as last_interaction_date

    from dated_interactions

    group by account_key

),

final as (

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
        account_interactions.last_interaction_date

    from account_items

    left join accounts
        on account_items.account_key = accounts.account_key

    left join accounts as parents
        on accounts.parent_account_key = parents.account_key

    left join account_interactions
        on account_items.account_key = account_interactions.account_key

)

select * from final
