{#- Share of the invoices issued each month that the customer disputed. Formula, grain and
    caveats: _kpi__models.yml. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

interactions as (

    select * from {{ ref('fct_interactions') }}

),

{#- A dispute counts once it was raised, whatever its state now. -#}
disputed_invoices as (

    select distinct invoice_key

    from interactions

    where is_dispute
        and invoice_key is not null
        and cast(created_at as date) <= {{ q2c_as_of_date() }}

),

issued as (

    select
        cast({{ dbt.date_trunc('month', 'invoices.issue_date') }} as date) as issue_month,
        invoices.total_amount_reporting,
        disputed_invoices.invoice_key is not null as is_disputed

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
        cast(disputed_amount_reporting as decimal(20, 4)) as disputed_amount_reporting

    from monthly

)

select * from final
