{#- Days sales outstanding per month and currency, standard and countback. Formulas, grain
    and caveats: _kpi__models.yml. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

aging_history as (

    select * from {{ ref('kpi_ar_aging_history') }}

),

dated_invoices as (

    select
        currency,
        issue_date,
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

{#- Receivables open at the period end: the aging snapshot taken on that day. -#}
period_balances as (

    select
        as_of_date as period_end,
        currency,
        sum(total_open_amount) as ar_ending_balance

    from aging_history

    group by as_of_date, currency

),

combined as (

    select
        periods.month_start,
        periods.currency,
        coalesce(period_sales.credit_sales_amount, 0) as credit_sales_amount,
        coalesce(period_balances.ar_ending_balance, 0) as ar_ending_balance,
        {{ q2c_days_between('periods.month_start', 'periods.period_end') }} + 1
            as days_in_period

    from periods

    left join period_sales
        on periods.month_start = period_sales.month_start
        and periods.currency = period_sales.currency

    left join period_balances
        on periods.period_end = period_balances.period_end
        and periods.currency = period_balances.currency

),

{#- Countback: each period's ending balance is matched against the credit sales of that
    month, then of the month before, and so on. A month whose sales the remaining balance
    still exceeds counts in full; the month where the balance runs out counts for the
    share of its sales needed. prior_sales_amount = sales of the later months of the walk,
    already used up before this month is reached. -#}
countback_walk as (

    select
        periods.month_start,
        periods.currency,
        periods.ar_ending_balance,
        earlier.credit_sales_amount,
        earlier.days_in_period,
        coalesce(sum(earlier.credit_sales_amount) over (
            partition by periods.month_start, periods.currency
            order by earlier.month_start desc
            rows between unbounded preceding and 1 preceding
        ), 0) as prior_sales_amount

    from combined as periods

    inner join combined as earlier
        on periods.currency = earlier.currency
        and earlier.month_start <= periods.month_start

),

countback_days as (

    select
        month_start,
        currency,
        sum(case
            when prior_sales_amount >= ar_ending_balance then 0
            when prior_sales_amount + credit_sales_amount <= ar_ending_balance
                then days_in_period
            else {{ q2c_ratio(
                '(ar_ending_balance - prior_sales_amount) * days_in_period',
                'credit_sales_amount'
            ) }}
        end) as countback_dso_days,
        max(prior_sales_amount + credit_sales_amount) >= max(ar_ending_balance)
            as is_countback_complete

    from countback_walk

    group by month_start, currency

),

final as (

    select
        combined.month_start,
        combined.currency,
        cast(combined.credit_sales_amount as decimal(20, 4)) as credit_sales_amount,
        cast(combined.ar_ending_balance as decimal(20, 4)) as ar_ending_balance,
        cast(combined.days_in_period as {{ dbt.type_int() }}) as days_in_period,
        cast(
            {{ q2c_ratio('combined.ar_ending_balance * combined.days_in_period',
                         'nullif(combined.credit_sales_amount, 0)') }}
            as decimal(20, 4)
        ) as dso_days,
        cast(countback_days.countback_dso_days as decimal(20, 4)) as countback_dso_days,
        countback_days.is_countback_complete

    from combined

    inner join countback_days
        on combined.month_start = countback_days.month_start
        and combined.currency = countback_days.currency

)

select * from final
