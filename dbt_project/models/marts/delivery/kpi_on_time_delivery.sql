{#- Whole days after the issue date by which the document must have left. -#}
{%- set on_time_days = var('on_time_delivery_days', 1) | string | trim -%}
{%- if not modules.re.match('^[0-9]+$', on_time_days) -%}
    {{ exceptions.raise_compiler_error(
        "var on_time_delivery_days must be a whole number of days >= 0, got '"
        ~ on_time_days ~ "'"
    ) }}
{%- endif -%}

with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

outbox as (

    select * from {{ source('q2c_delivery', 'outbox') }}

),

deliveries as (

    select * from {{ ref('fct_deliveries') }}

),

{#- Invoices q2c is responsible for delivering: those with a document in the outbox,
    unless it was cancelled before it went out (a rejected invoice is not late). -#}
queued_invoices as (

    select distinct invoice_id

    from outbox

    where kind = 'invoice'
        and coalesce(status, '') <> 'cancelled'

),

{#- The first send that stuck (not bounced since), on any channel of the plan. -#}
first_deliveries as (

    select
        invoice_id,
        min(sent_at) as delivered_at

    from deliveries

    where is_delivered

    group by invoice_id

),

measured as (

    select
        invoices.invoice_id,
        invoices.issue_date,
        cast({{ dbt.dateadd('day', on_time_days, 'invoices.issue_date') }} as date)
            as deadline,
        case
            when cast(first_deliveries.delivered_at as date) <= {{ q2c_as_of_date() }}
                then cast(first_deliveries.delivered_at as date)
        end as delivered_date

    from invoices

    inner join queued_invoices
        on invoices.invoice_id = queued_invoices.invoice_id

    left join first_deliveries
        on invoices.invoice_id = first_deliveries.invoice_id

    where invoices.issue_date <= {{ q2c_as_of_date() }}

),

classified as (

    select
        cast({{ dbt.date_trunc('month', 'issue_date') }} as date) as issue_month,
        case
            when delivered_date <= deadline then 'on_time'
            when delivered_date is not null then 'late'
            when deadline < {{ q2c_as_of_date() }} then 'late'
            else 'pending'
        end as timeliness

    from measured

),

final as (

    select
        issue_month,
        {{ q2c_as_of_date() }} as as_of_date,
        {{ on_time_days }} as on_time_days,
        sum(case when timeliness = 'on_time' then 1 else 0 end) as invoices_on_time,
        sum(case when timeliness = 'late' then 1 else 0 end) as invoices_late,
        sum(case when timeliness = 'pending' then 1 else 0 end) as invoices_pending,
        sum(case when timeliness <> 'pending' then 1 else 0 end) as invoices_measured,
        cast(
            {{ q2c_ratio(
                "sum(case when timeliness = 'on_time' then 1 else 0 end)",
                "nullif(sum(case when timeliness <> 'pending' then 1 else 0 end), 0)"
            ) }}
            as decimal(9, 4)
        ) as on_time_delivery_rate

    from classified

    group by issue_month

)

select * from final
