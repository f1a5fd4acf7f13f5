with

credit_memos as (

    select * from {{ ref('stg_quickbooks__credit_memos') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

final as (

    select
        {{ q2c_surrogate_key(["'quickbooks'", 'credit_memos.credit_memo_id']) }}
            as credit_note_key,
        credit_memos.credit_memo_id,
        credit_memos.credit_memo_number as credit_note_number,
        accounts.account_key,
        credit_memos.issue_date,
        credit_memos.currency_code as currency,
        credit_memos.total_amount,
        credit_memos.tax_amount,
        credit_memos.remaining_credit_amount as remaining_credit

    from credit_memos

    left join accounts
        on credit_memos.customer_id = accounts.erp_customer_id

)

select * from final
