{#- Per sales transaction (invoice, credit memo, payment) what its lines say: the main
    line's open amounts and source document, the tax, and the base-currency total of the
    main line in the first accounting book. -#}
with

transactions as (

    select * from {{ ref('stg_netsuite__transactions') }}
    where transaction_type in ('CustInvc', 'CustCred', 'CustPymt')

),

lines as (

    select * from {{ ref('stg_netsuite__transaction_lines') }}

),

accounting_lines as (

    select * from {{ ref('stg_netsuite__transaction_accounting_lines') }}

),

main_lines as (

    select
        transaction_id,
        min(transaction_line_id) as main_line_id,
        min(created_from_transaction_id) as created_from_transaction_id,
        min(payment_method_id) as payment_method_id,
        sum(unpaid_amount) as unpaid_amount,
        sum(unused_payment_amount) as unused_payment_amount

    from lines

    where is_main_line

    group by transaction_id

),

tax_lines as (

    select
        transaction_id,
        sum(amount) as tax_amount

    from lines

    where is_tax_line and not coalesce(is_main_line, false)

    group by transaction_id

),

main_postings as (

    select
        accounting_lines.transaction_id,
        accounting_lines.base_amount,
        row_number() over (
            partition by accounting_lines.transaction_id
            order by accounting_lines.accounting_book_id
        ) as book_rank

    from accounting_lines

    inner join main_lines
        on accounting_lines.transaction_id = main_lines.transaction_id
        and accounting_lines.transaction_line_id = main_lines.main_line_id

),

final as (

    select
        transactions.transaction_id,
        transactions.transaction_type,
        main_lines.created_from_transaction_id,
        main_lines.payment_method_id,
        main_lines.unpaid_amount,
        main_lines.unused_payment_amount,
        tax_lines.tax_amount as signed_tax_amount,
        main_postings.base_amount as base_total_amount

    from transactions

    left join main_lines
        on transactions.transaction_id = main_lines.transaction_id

    left join tax_lines
        on transactions.transaction_id = tax_lines.transaction_id

    left join main_postings
        on transactions.transaction_id = main_postings.transaction_id
        and main_postings.book_rank = 1

)

select * from final
