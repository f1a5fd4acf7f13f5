{#- Days from a quote's acceptance to its first invoice, per month of that invoice. Formula,
    grain and caveats: _kpi__models.yml. -#}
with

quotes as (

    select * from {{ ref('fct_quotes') }}

),

measured as (

    select
        cast({{ dbt.date_trunc('month', 'first_invoice_issue_date') }} as date)
            as invoice_month,
        {{ q2c_days_between('accepted_date', 'first_invoice_issue_date') }}
            as days_to_invoice

    from quotes

    where accepted_date is not null
        and accepted_date <= {{ q2c_as_of_date() }}
        and first_invoice_issue_date <= {{ q2c_as_of_date() }}

),

monthly as (

    select
        invoice_month,
        count(*) as quotes_invoiced,
        sum(days_to_invoice) as total_days_to_invoice,
        percentile_cont(0.5) within group (order by days_to_invoice)
            as median_days_to_invoice,
        min(days_to_invoice) as min_days_to_invoice,
        max(days_to_invoice) as max_days_to_invoice

    from measured

    group by invoice_month

),

final as (

    select
        invoice_month,
        {{ q2c_as_of_date() }} as as_of_date,
        quotes_invoiced,
        cast(
            {{ q2c_ratio('total_days_to_invoice', 'quotes_invoiced') }} as decimal(12, 4)
        ) as avg_days_to_invoice,
        cast(median_days_to_invoice as decimal(12, 4)) as median_days_to_invoice,
        cast(min_days_to_invoice as {{ dbt.type_int() }}) as min_days_to_invoice,
        cast(max_days_to_invoice as {{ dbt.type_int() }}) as max_days_to_invoice

    from monthly

)

select * from final
