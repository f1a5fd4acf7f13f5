{#- Dynamics sales invoices (headers with a total of zero or more; a negative total is a
    credit note). The header entity carries no due date and no open amount: the due date
    is the one on the invoice's settlement, else it follows from the payment terms (Net:
    invoice date plus months and days; CurrentMonth: from the end of the invoice month);
    the balance is the total less what payment journals settled against it. -#}
with

headers as (

    select * from {{ ref('stg_dynamics365__invoice_headers') }}
    where total_amount >= 0 or total_amount is null

),

terms as (

    select * from {{ ref('stg_dynamics365__payment_terms') }}

),

settled_due_dates as (

    select
        invoice_id,
        min(invoice_due_date) as due_date

    from {{ ref('stg_dynamics365__settled_invoices') }}

    group by invoice_id

),

applied as (

    select
        invoice_id,
        sum(amount) as applied_amount

    from {{ ref('int_dynamics365__payment_applications') }}

    group by invoice_id

),

final as (

    select
        headers.invoice_id,
        headers.invoice_number,
        headers.customer_id,
        cast(null as {{ dbt.type_string() }}) as crm_opportunity_id,
        headers.sales_order_number as order_id,
        headers.customer_reference as po_number,
        headers.currency_code,
        cast(null as {{ dbt.type_string() }}) as billing_email,
        cast(null as {{ dbt.type_string() }}) as customer_memo,
        cast(null as {{ dbt.type_string() }}) as email_status,
        cast(null as decimal(20, 10)) as exchange_rate,
        headers.tax_amount,
        headers.total_amount,
        headers.total_amount - coalesce(applied.applied_amount, 0) as balance_amount,
        cast(null as decimal(20, 4)) as home_total_amount,
        headers.invoice_date as issue_date,
        coalesce(
            settled_due_dates.due_date,
            case terms.payment_method_type
                when 'Net' then cast({{ dbt.dateadd(
                    'day', 'coalesce(terms.number_of_days, 0)',
                    dbt.dateadd('month', 'coalesce(terms.number_of_months, 0)',
                                'headers.invoice_date')) }} as date)
                when 'CurrentMonth' then cast({{ dbt.dateadd(
                    'day', 'coalesce(terms.number_of_days, 0)',
                    dbt.dateadd('month', 'coalesce(terms.number_of_months, 0)',
                                dbt.last_day('headers.invoice_date', 'month'))) }} as date)
            end
        ) as due_date,
        cast(null as {{ dbt.type_timestamp() }}) as created_at,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at

    from headers

    left join terms
        on headers.company_id = terms.company_id
        and headers.payment_terms_name = terms.payment_terms_name

    left join settled_due_dates
        on headers.invoice_id = settled_due_dates.invoice_id

    left join applied
        on headers.invoice_id = applied.invoice_id

)

select * from final
