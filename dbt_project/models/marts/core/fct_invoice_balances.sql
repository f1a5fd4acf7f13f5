{#- Each invoice's balance as q2c computes it from fct_cash_applications, beside the
    balance its ERP states. Fees settle nothing. The balance never drops below zero:
    what was applied beyond the total (only an ERP can do that; q2c's own allocations
    stop at what is open) is overpaid_amount, listed in mart_unallocated_cash. -#}
with

invoices as (

    select * from {{ ref('fct_invoices') }}

),

applications as (

    select * from {{ ref('fct_cash_applications') }}

),

summed as (

    select
        invoice_key,
        sum(
            case when allocation_type in ('payment', 'refund', 'chargeback') then amount end
        ) as paid_amount,
        sum(case when allocation_type = 'credit_note' then amount end) as credited_amount,
        sum(
            case
                when allocation_type = 'payment' and not is_erp_recorded then amount
            end
        ) as allocated_by_q2c_amount,
        count(*) as application_count,
        max(allocated_on) as last_allocation_date

    from applications

    where invoice_key is not null
        and allocation_type <> 'fee'

    group by invoice_key

),

joined as (

    select
        invoices.invoice_key,
        invoices.source_system,
        invoices.invoice_id,
        invoices.invoice_number,
        invoices.account_key,
        invoices.currency,
        invoices.issue_date,
        invoices.due_date,
        coalesce(invoices.total_amount, 0) as total_amount,
        coalesce(summed.paid_amount, 0) as paid_amount,
        coalesce(summed.credited_amount, 0) as credited_amount,
        coalesce(summed.allocated_by_q2c_amount, 0) as allocated_by_q2c_amount,
        coalesce(summed.application_count, 0) as application_count,
        summed.last_allocation_date,
        invoices.balance_amount as erp_balance_amount

    from invoices

    left join summed
        on invoices.invoice_key = summed.invoice_key

),

computed as (

    select
        *,
        total_amount - paid_amount - credited_amount as unsettled_amount

    from joined

),

final as (

    select
        invoice_key,
        source_system,
        invoice_id,
        invoice_number,
        account_key,
        currency,
        cast(total_amount as decimal(20, 4)) as total_amount,
        cast(paid_amount as decimal(20, 4)) as paid_amount,
        cast(credited_amount as decimal(20, 4)) as credited_amount,
        cast(
            case when unsettled_amount > 0 then unsettled_amount else 0 end
            as decimal(20, 4)
        ) as balance_amount,
        cast(
            case when unsettled_amount < 0 then -unsettled_amount else 0 end
            as decimal(20, 4)
        ) as overpaid_amount,
        cast(erp_balance_amount as decimal(20, 4)) as erp_balance_amount,
        cast(
            case when unsettled_amount > 0 then unsettled_amount else 0 end
            - erp_balance_amount
            as decimal(20, 4)
        ) as balance_difference,
        cast(allocated_by_q2c_amount as decimal(20, 4)) as allocated_by_q2c_amount,
        case
            when unsettled_amount <= 0 and credited_amount > 0 and paid_amount <= 0
                then 'credited'
            when unsettled_amount <= 0 then 'paid'
            when paid_amount + credited_amount > 0 then 'partially_paid'
            else 'open'
        end as settlement_status,
        cast(application_count as integer) as application_count,
        issue_date,
        due_date,
        last_allocation_date

    from computed

)

select * from final
