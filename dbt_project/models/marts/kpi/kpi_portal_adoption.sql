{#- Self-service adoption of the customer portal, per month: the share of the accounts
    invoiced that month that helped themselves in the portal that month, and the share of
    the invoices issued that month a customer helped themselves with. Formula, grain and
    caveats: _portal_kpi__models.yml. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

events as (

    select * from {{ ref('fct_portal_events') }}

),

issued as (

    select
        invoice_key,
        account_key,
        cast({{ dbt.date_trunc('month', 'issue_date') }} as date) as month_start

    from invoices

    where issue_date <= {{ q2c_as_of_date() }}

),

self_service as (

    select
        event_id,
        account_key,
        invoice_key,
        cast({{ dbt.date_trunc('month', 'occurred_on') }} as date) as month_start

    from events

    where is_self_service
        and occurred_on <= {{ q2c_as_of_date() }}

),

{#- The accounts invoiced in a month: those whose adoption the month measures. -#}
active_accounts as (

    select distinct
        account_key,
        month_start

    from issued

    where account_key is not null

),

account_months as (

    select distinct
        account_key,
        month_start

    from self_service

    where account_key is not null

),

helped_invoices as (

    select distinct invoice_key

    from self_service

    where invoice_key is not null

),

account_monthly as (

    select
        active_accounts.month_start,
        count(*) as active_account_count,
        count(account_months.account_key) as self_service_account_count

    from active_accounts

    left join account_months
        on active_accounts.account_key = account_months.account_key
        and active_accounts.month_start = account_months.month_start

    group by active_accounts.month_start

),

invoice_monthly as (

    select
        issued.month_start,
        count(*) as invoices_issued,
        count(helped_invoices.invoice_key) as self_service_invoice_count

    from issued

    left join helped_invoices
        on issued.invoice_key = helped_invoices.invoice_key

    group by issued.month_start

),

event_monthly as (

    select
        month_start,
        count(*) as self_service_event_count,
        count(distinct account_key) as self_service_account_total

    from self_service

    group by month_start

),

final as (

    select
        invoice_monthly.month_start,
        {{ q2c_as_of_date() }} as as_of_date,
        coalesce(account_monthly.active_account_count, 0) as active_account_count,
        coalesce(account_monthly.self_service_account_count, 0)
            as self_service_account_count,
        cast(
            {{ q2c_ratio('account_monthly.self_service_account_count',
                         'nullif(account_monthly.active_account_count, 0)') }}
            as decimal(9, 4)
        ) as self_service_account_share,
        invoice_monthly.invoices_issued,
        invoice_monthly.self_service_invoice_count,
        cast(
            {{ q2c_ratio('invoice_monthly.self_service_invoice_count',
                         'invoice_monthly.invoices_issued') }}
            as decimal(9, 4)
        ) as self_service_invoice_share,
        coalesce(event_monthly.self_service_event_count, 0) as self_service_event_count,
        coalesce(event_monthly.self_service_account_total, 0)
            as self_service_account_total

    from invoice_monthly

    left join account_monthly
        on invoice_monthly.month_start = account_monthly.month_start

    left join event_monthly
        on invoice_monthly.month_start = event_monthly.month_start

)

select * from final
