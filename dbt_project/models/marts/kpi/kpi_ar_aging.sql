with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

{#- Open means an ERP balance above zero on an invoice issued by the as-of date. An
    invoice whose issue date did not parse stays in, so no open money drops out. -#}
open_invoices as (

    select
        account_key,
        currency,
        balance_amount,
        days_overdue

    from invoices

    where balance_amount > 0
        and (issue_date is null or issue_date <= {{ q2c_as_of_date() }})

),

bucketed as (

    select
        account_key,
        currency,
        sum(case
            when coalesce(days_overdue, 0) <= 0 then balance_amount else 0
        end) as current_amount,
        sum(case
            when days_overdue between 1 and 30 then balance_amount else 0
        end) as days_1_30_amount,
        sum(case
            when days_overdue between 31 and 60 then balance_amount else 0
        end) as days_31_60_amount,
        sum(case
            when days_overdue between 61 and 90 then balance_amount else 0
        end) as days_61_90_amount,
        sum(case
            when days_overdue > 90 then balance_amount else 0
        end) as days_over_90_amount,
        sum(balance_amount) as total_open_amount,
        count(*) as open_invoice_count

    from open_invoices

    group by account_key, currency

),

final as (

    select
        {{ q2c_as_of_date() }} as as_of_date,
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
