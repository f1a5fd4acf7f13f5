{#- Every amount no invoice has taken, one row each (unallocated_kind):
    'payment': what a payment has left once its ERP applications, q2c's allocations and
    the refunds and chargebacks of that cash are counted, plus what its ERP applied to
    invoices q2c does not have; 'credit_note': what a credit note has left once applied;
    'invoice_overpayment': what was applied to an invoice beyond its total. -#}
with

payments as (

    select * from {{ ref('int_cash_payments_unapplied') }}

),

by_reference as (

    select * from {{ ref('int_cash_allocations_by_reference') }}

),

applications as (

    select * from {{ ref('fct_cash_applications') }}

),

credit_notes as (

    select * from {{ ref('fct_credit_notes') }}

),

invoice_balances as (

    select * from {{ ref('fct_invoice_balances') }}

),

allocated_by_q2c as (

    select
        payment_key,
        sum(case when allocation_type = 'payment' then amount end) as allocated_amount,
        sum(
            case when allocation_rule = 'payment_reversal' then -amount end
        ) as reversed_amount

    from applications

    where not is_erp_recorded
        and payment_key is not null

    group by payment_key

),

reference_payments as (

    select distinct payment_key from by_reference

),

payments_left as (

    select
        payments.*,
        payments.unapplied_amount
            - coalesce(allocated_by_q2c.allocated_amount, 0)
            - (payments.reversal_amount - coalesce(allocated_by_q2c.reversed_amount, 0))
            as left_amount,
        reference_payments.payment_key is not null as is_reference_payment

    from payments

    left join allocated_by_q2c
        on payments.payment_key = allocated_by_q2c.payment_key

    left join reference_payments
        on payments.payment_key = reference_payments.payment_key

),

payment_items as (

    select
        'payment' as unallocated_kind,
        source_system,
        payment_id as source_id,
        payment_key,
        cast(null as {{ dbt.type_string() }}) as credit_note_key,
        cast(null as {{ dbt.type_string() }}) as invoice_key,
        account_key,
        currency,
        payment_date as unallocated_since,
        payment_amount as document_amount,
        case when left_amount > 0 then left_amount else 0 end
            + unknown_invoice_amount as unallocated_amount,
        case
            when unknown_invoice_amount > 0 then 'applied_to_unknown_invoice'
            when is_reference_payment then 'exceeds_referenced_invoices'
            when account_key is null then 'no_account'
            else 'exceeds_open_invoices'
        end as unallocated_reason,
        reference_number

    from payments_left

),

credit_applied as (

    select
        credit_note_key,
        sum(amount) as applied_amount

    from applications

    where allocation_type = 'credit_note'

    group by credit_note_key

),

credit_note_items as (

    select
        'credit_note' as unallocated_kind,
        credit_notes.source_system,
        credit_notes.source_id,
        cast(null as {{ dbt.type_string() }}) as payment_key,
        credit_notes.credit_note_key,
        credit_notes.invoice_key,
        credit_notes.account_key,
        credit_notes.currency,
        credit_notes.issue_date as unallocated_since,
        credit_notes.total_amount as document_amount,
        credit_notes.total_amount - coalesce(credit_applied.applied_amount, 0)
            as unallocated_amount,
        case
            when credit_notes.invoice_key is null then 'names_no_invoice'
            when invoice_balances.invoice_key is null then 'names_unknown_invoice'
            when invoice_balances.currency <> credit_notes.currency
                then 'currency_differs_from_invoice'
            else 'exceeds_named_invoice'
        end as unallocated_reason,
        cast(null as {{ dbt.type_string() }}) as reference_number

    from credit_notes

    left join credit_applied
        on credit_notes.credit_note_key = credit_applied.credit_note_key

    left join invoice_balances
        on credit_notes.invoice_key = invoice_balances.invoice_key

),

overpayment_items as (

    select
        'invoice_overpayment' as unallocated_kind,
        source_system,
        invoice_id as source_id,
        cast(null as {{ dbt.type_string() }}) as payment_key,
        cast(null as {{ dbt.type_string() }}) as credit_note_key,
        invoice_key,
        account_key,
        currency,
        last_allocation_date as unallocated_since,
        total_amount as document_amount,
        overpaid_amount as unallocated_amount,
        'applied_beyond_invoice_total' as unallocated_reason,
        cast(null as {{ dbt.type_string() }}) as reference_number

    from invoice_balances

),

items as (

    select * from payment_items
    union all
    select * from credit_note_items
    union all
    select * from overpayment_items

),

final as (

    select
        {{ q2c_surrogate_key(['unallocated_kind', 'payment_key', 'credit_note_key',
                              'invoice_key']) }} as unallocated_key,
        unallocated_kind,
        source_system,
        source_id,
        payment_key,
        credit_note_key,
        invoice_key,
        account_key,
        currency,
        unallocated_since,
        cast(document_amount as decimal(20, 4)) as document_amount,
        cast(unallocated_amount as decimal(20, 4)) as unallocated_amount,
        unallocated_reason,
        reference_number

    from items

)

select * from final
where unallocated_amount > 0
