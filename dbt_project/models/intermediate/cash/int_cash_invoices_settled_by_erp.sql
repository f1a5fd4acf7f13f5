{#- Every invoice with what its ERP (or gateway) recorded against it: cash paid less
    refunds and chargebacks, and credit notes applied. open_amount is what is left for
    q2c to settle, never below zero. invoice_number_normalized is the number as
    references are compared (macros/q2c_references.sql). -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

lines as (

    select * from {{ ref('int_cash_payment_lines_resolved') }}

),

settled as (

    select
        invoice_key,
        sum(
            case when allocation_type in ('payment', 'refund', 'chargeback') then amount end
        ) as paid_amount,
        sum(case when allocation_type = 'credit_note' then amount end) as credited_amount,
        max(allocation_date) as last_allocation_date

    from lines

    where line_status = 'taken'
        and invoice_key is not null
        and allocation_type <> 'fee'

    group by invoice_key

),

joined as (

    select
        invoices.invoice_key,
        invoices.source_system,
        invoices.invoice_id,
        invoices.invoice_number,
        {{ q2c_normalize_reference('invoices.invoice_number') }}
            as invoice_number_normalized,
        invoices.account_key,
        invoices.currency,
        invoices.issue_date,
        invoices.due_date,
        coalesce(invoices.due_date, invoices.issue_date) as effective_due_date,
        invoices.total_amount,
        coalesce(settled.paid_amount, 0) as erp_paid_amount,
        coalesce(settled.credited_amount, 0) as erp_credited_amount,
        settled.last_allocation_date as erp_last_allocation_date

    from invoices

    left join settled
        on invoices.invoice_key = settled.invoice_key

),

final as (

    select
        invoice_key,
        source_system,
        invoice_id,
        invoice_number,
        invoice_number_normalized,
        account_key,
        currency,
        issue_date,
        due_date,
        effective_due_date,
        cast(total_amount as decimal(20, 4)) as total_amount,
        cast(erp_paid_amount as decimal(20, 4)) as erp_paid_amount,
        cast(erp_credited_amount as decimal(20, 4)) as erp_credited_amount,
        erp_last_allocation_date,
        cast(
            case
                when coalesce(total_amount, 0) - erp_paid_amount - erp_credited_amount > 0
                    then coalesce(total_amount, 0) - erp_paid_amount - erp_credited_amount
                else 0
            end
            as decimal(20, 4)
        ) as open_amount

    from joined

)

select * from final
