{#- Every QuickBooks payment line that applies an amount to an invoice. A payment whose
    total is 0 and that also carries a credit memo line is how QuickBooks applies a credit
    memo: its invoice amounts are credited, not paid. Lines of deleted or missing payments
    are dropped, since their date and currency are unknown. -#}
with

payments as (

    select * from {{ ref('stg_quickbooks__payments') }}
    where not coalesce(is_deleted, false)

),

payment_lines as (

    select * from {{ ref('stg_quickbooks__payment_lines') }}

),

credit_memo_lines as (

    select
        payment_id,
        min(credit_memo_id) as credit_memo_id

    from payment_lines

    where credit_memo_id is not null

    group by payment_id

),

final as (

    select
        payment_lines.payment_id,
        payment_lines.line_index,
        payment_lines.invoice_id,
        cast(null as {{ dbt.type_string() }}) as invoice_number,
        case
            when payments.total_amount = 0 and credit_memo_lines.payment_id is not null
                then credit_memo_lines.credit_memo_id
        end as credit_note_id,
        case
            when payments.total_amount = 0 and credit_memo_lines.payment_id is not null
                then 'credit_note'
            else 'payment'
        end as allocation_kind,
        payment_lines.amount,
        payments.payment_date as allocation_date

    from payment_lines

    inner join payments
        on payment_lines.payment_id = payments.payment_id

    left join credit_memo_lines
        on payment_lines.payment_id = credit_memo_lines.payment_id

    where payment_lines.invoice_id is not null

)

select * from final
