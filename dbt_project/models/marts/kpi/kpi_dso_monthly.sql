with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

allocations as (

    select * from {{ ref('fct_payment_allocations') }}

),

dated_invoices as (

    select
        invoice_id,
        currency,
        issue_date,
        total_amount

    from invoices

    where issue_date <= {{ q2c_as_of_date() }}
        and currency is not null

),

{#- Allocations count in the invoice's currency and only once the invoice exists. -#}
invoice_allocations as (

    select
        dated_invoices.currency,
        dated_invoices.issue_date,
        allocations.allocation_date,
        allocations.amount

    from allocations

    inner join dated_invoices
        on allocations.invoice_id = dated_invoices.invoice_id

),

months as (

    {{ q2c_month_spine(
        '(select min(issue_date) from dated_invoices)',
        q2c_as_of_date()
    ) }}

),

currencies as (

    select distinct currency from dated_invoices

),

{#- The month that holds the as-of date ends on the as-of date. -#}
periods as (

    select
        months.month_start,
        currencies.currency,
        least(
            {{ dbt.last_day('months.month_start', 'month') }},
            {{ q2c_as_of_date() }}
        ) as period_end

    from months

    cross join currencies

),

period_sales as (

    select
        periods.month_start,
        periods.currency,
        sum(dated_invoices.total_amount) as credit_sales_amount

    from periods

    inner join dated_invoices
        on periods.currency = dated_invoices.currency
        and dated_invoices.issue_date between periods.month_start and periods.period_end

    group by periods.month_start, periods.currency

),

invoiced_to_date as (

    select
        periods.month_start,
        periods.currency,
        sum(dated_invoices.total_amount) as invoiced_amount

    from periods

    inner join dated_invoices
        on periods.currency = dated_invoices.currency
        and dated_invoices.issue_date <= periods.period_end

    group by periods.month_start, periods.currency

),

allocated_to_date as (

    select
        periods.month_start,
        periods.currency,
        sum(invoice_allocations.amount) as allocated_amount

    from periods

    inner join invoice_allocations
        on periods.currency = invoice_allocations.currency
        and invoice_allocations.issue_date <= periods.period_end
        and invoice_allocations.allocation_date <= periods.period_end

    group by periods.month_start, periods.currency

),

combined as (

    select
        periods.month_start,
        periods.currency,
        coalesce(period_sales.credit_sales_amount, 0) as credit_sales_amount,
        coalesce(invoiced_to_date.invoiced_amount, 0)
            - coalesce(allocated_to_date.allocated_amount, 0) as ar_ending_balance,
        {{ q2c_days_between('periods.month_start', 'periods.period_end') }} + 1
            as days_in_period

    from periods

    left join period_sales
        on periods.month_start = period_sales.month_start
        and periods.currency = period_sales.currency

    left join invoiced_to_date
        on periods.month_start = invoiced_to_date.month_start
        and periods.currency = invoiced_to_date.currency

    left join allocated_to_date
        on periods.month_start = allocated_to_date.month_start
        and periods.currency = allocated_to_date.currency

),

final as (

    select
        month_start,
        currency,
        cast(credit_sales_amount as decimal(20, 4)) as credit_sales_amount,
        cast(ar_ending_balance as decimal(20, 4)) as ar_ending_balance,
        days_in_period,
        case
            when credit_sales_amount > 0
                then cast(
                    ar_ending_balance * days_in_period / credit_sales_amount
                    as decimal(20, 4)
                )
        end as dso_days

    from combined

)

select * from final
