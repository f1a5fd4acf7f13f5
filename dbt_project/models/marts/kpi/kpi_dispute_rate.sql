{#- Share of the invoices issued each month that the customer disputed, through the CRM or
    the portal. Formula, grain and caveats: _kpi__models.yml. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

disputes as (

    select * from {{ ref('fct_disputes') }}

),

{#- A dispute counts once it was raised, whatever its state now. -#}
disputed_invoices as (

    select
        invoice_key,
        max(case when channel = 'portal' then 1 else 0 end) as via_portal

    from disputes

    where invoice_key is not null
        and cast(opened_at as date) <= {{ q2c_as_of_date() }}

    group by invoice_key

),

issued as (

    select
        cast({{ dbt.date_trunc('month', 'invoices.issue_date') }} as date) as issue_month,
        invoices.total_amount_reporting,
        disputed_invoices.invoice_key is not null as is_disputed,
        coalesce(disputed_invoices.via_portal, 0) = 1 as is_disputed_in_portal

    from invoices

    left join disputed_invoices
        on invoices.invoice_key = disputed_invoices.invoice_key

    where invoices.issue_date <= {{ q2c_as_of_date() }}

),

monthly as (

    select
        issue_month,
        count(*) as invoices_issued,
        count(case when is_disputed then 1 end) as invoices_disputed,
        count(case when is_disputed_in_portal then 1 end) as invoices_disputed_in_portal,
        sum(total_amount_reporting) as issued_amount_reporting,
        sum(case
            when is_disputed then total_amount_reporting else 0
        end) as disputed_amount_reporting

    from issued

    group by issue_month

),

final as (

    select
        issue_month,
        {{ q2c_as_of_date() }} as as_of_date,
        invoices_issued,
        invoices_disputed,
        cast(
            {{ q2c_ratio('invoices_disputed', 'invoices_issued') }} as decimal(9, 4)
        ) as dispute_rate,
        cast(issued_amount_reporting as decimal(20, 4)) as issued_amount_reporting,
        cast(disputed_amount_reporting as decimal(20, 4)) as disputed_amount_reporting,
        invoices_disputed_in_portal

    from monthly

)

select * from final
