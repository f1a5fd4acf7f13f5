{#- NetSuite invoices (type CustInvc). The balance is the main line's open amount; the tax
    is the sum of the tax lines, which NetSuite stores as credits. -#}
with

transactions as (

    select * from {{ ref('stg_netsuite__transactions') }}
    where transaction_type = 'CustInvc'

),

totals as (

    select * from {{ ref('int_netsuite__transaction_totals') }}

),

currencies as (

    select * from {{ ref('stg_netsuite__currencies') }}

),

final as (

    select
        transactions.transaction_id as invoice_id,
        transactions.document_number as invoice_number,
        transactions.customer_id,
        cast(null as {{ dbt.type_string() }}) as crm_opportunity_id,
        totals.created_from_transaction_id as order_id,
        transactions.reference_number as po_number,
        currencies.currency_code,
        transactions.email as billing_email,
        transactions.memo as customer_memo,
        cast(null as {{ dbt.type_string() }}) as email_status,
        transactions.exchange_rate,
        coalesce(-totals.signed_tax_amount, 0) as tax_amount,
        transactions.total_amount,
        totals.unpaid_amount as balance_amount,
        totals.base_total_amount as home_total_amount,
        transactions.transaction_date as issue_date,
        transactions.due_date,
        transactions.created_at,
        transactions.updated_at

    from transactions

    left join totals
        on transactions.transaction_id = totals.transaction_id

    left join currencies
        on transactions.currency_id = currencies.currency_id

)

select * from final
