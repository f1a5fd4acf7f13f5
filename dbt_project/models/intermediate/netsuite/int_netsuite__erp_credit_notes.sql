{#- NetSuite credit memos (type CustCred), amounts as positive credit. The invoice is the
    one the memo was created from, else the only invoice it was applied to. -#}
with

credit_memos as (

    select * from {{ ref('stg_netsuite__transactions') }}
    where transaction_type = 'CustCred'

),

invoices as (

    select transaction_id from {{ ref('stg_netsuite__transactions') }}
    where transaction_type = 'CustInvc'

),

totals as (

    select * from {{ ref('int_netsuite__transaction_totals') }}

),

links as (

    select * from {{ ref('stg_netsuite__transaction_links') }}
    where link_type = 'Payment'
        and previous_type = 'CustInvc'
        and next_type = 'CustCred'

),

applied_invoices as (

    select
        next_transaction_id as credit_memo_id,
        min(previous_transaction_id) as invoice_id,
        count(distinct previous_transaction_id) as invoice_count

    from links

    group by next_transaction_id

),

currencies as (

    select * from {{ ref('stg_netsuite__currencies') }}

),

final as (

    select
        credit_memos.transaction_id as credit_note_id,
        credit_memos.document_number as credit_note_number,
        credit_memos.customer_id,
        coalesce(
            invoices.transaction_id,
            case when applied_invoices.invoice_count = 1 then applied_invoices.invoice_id end
        ) as invoice_id,
        currencies.currency_code,
        credit_memos.exchange_rate,
        abs(credit_memos.total_amount) as total_amount,
        coalesce(abs(totals.signed_tax_amount), 0) as tax_amount,
        abs(coalesce(totals.unused_payment_amount, totals.unpaid_amount))
            as remaining_credit_amount,
        credit_memos.memo as reason,
        credit_memos.transaction_date as issue_date,
        credit_memos.created_at,
        credit_memos.updated_at

    from credit_memos

    left join totals
        on credit_memos.transaction_id = totals.transaction_id

    left join invoices
        on totals.created_from_transaction_id = invoices.transaction_id

    left join applied_invoices
        on credit_memos.transaction_id = applied_invoices.credit_memo_id

    left join currencies
        on credit_memos.currency_id = currencies.currency_id

)

select * from final
