{#- Every allocation q2c takes or makes, with the rule behind it (docs/payments.md,
    "Allocation rules"): what the ERP or gateway recorded (erp_application; a fee line is
    gateway_fee), credit notes applied to the invoice they name (credit_note), unapplied
    cash allocated by reference, exact amount or age (remittance_reference, exact_amount,
    oldest_first), refunds and chargebacks of that cash (payment_reversal), and gateway
    fees a payment carries without a fee line (gateway_fee). -#}
with

lines as (

    select * from {{ ref('int_cash_payment_lines_resolved') }}

),

payments as (

    select * from {{ ref('fct_payments') }}

),

credit_notes as (

    select * from {{ ref('fct_credit_notes') }}

),

invoices as (

    select * from {{ ref('fct_invoices') }}

),

credit_notes_applied as (

    select * from {{ ref('int_cash_credit_notes_applied') }}

),

payments_allocated as (

    select * from {{ ref('int_cash_payments_allocated') }}

),

reversals as (

    select * from {{ ref('int_cash_reversals_followed') }}

),

erp_applications as (

    select
        {{ q2c_surrogate_key(["'erp_application'", 'line_key']) }} as application_key,
        source_system,
        case when allocation_type <> 'credit_note' then payment_key end as payment_key,
        invoice_key,
        credit_note_key,
        currency,
        amount,
        allocation_type,
        case
            when allocation_type = 'fee' then 'gateway_fee'
            else 'erp_application'
        end as allocation_rule,
        allocation_date as allocated_on,
        true as is_erp_recorded,
        line_key as source_allocation_key

    from lines

    where line_status = 'taken'

),

fee_lines as (

    select
        payment_key,
        sum(-amount) as fee_amount

    from lines

    where line_status = 'taken'
        and allocation_type = 'fee'

    group by payment_key

),

{#- A gateway fee the payment carries but no fee line records. -#}
uncovered_fees as (

    select
        {{ q2c_surrogate_key(["'gateway_fee'", 'payments.payment_key']) }}
            as application_key,
        payments.source_system,
        payments.payment_key,
        cast(null as {{ dbt.type_string() }}) as invoice_key,
        cast(null as {{ dbt.type_string() }}) as credit_note_key,
        payments.currency,
        -(payments.fee_amount - coalesce(fee_lines.fee_amount, 0)) as amount,
        'fee' as allocation_type,
        'gateway_fee' as allocation_rule,
        payments.payment_date as allocated_on,
        false as is_erp_recorded,
        cast(null as {{ dbt.type_string() }}) as source_allocation_key

    from payments

    left join fee_lines
        on payments.payment_key = fee_lines.payment_key

    where payments.fee_amount - coalesce(fee_lines.fee_amount, 0) > 0

),

credit_note_applications as (

    select
        {{ q2c_surrogate_key(["'credit_note'", 'credit_notes_applied.credit_note_key',
                              'credit_notes_applied.invoice_key']) }} as application_key,
        credit_notes.source_system,
        cast(null as {{ dbt.type_string() }}) as payment_key,
        credit_notes_applied.invoice_key,
        credit_notes_applied.credit_note_key,
        credit_notes_applied.currency,
        credit_notes_applied.amount,
        'credit_note' as allocation_type,
        'credit_note' as allocation_rule,
        credit_notes_applied.allocated_on,
        false as is_erp_recorded,
        cast(null as {{ dbt.type_string() }}) as source_allocation_key

    from credit_notes_applied

    inner join credit_notes
        on credit_notes_applied.credit_note_key = credit_notes.credit_note_key

),

cash_allocations as (

    select
        {{ q2c_surrogate_key(['payments_allocated.allocation_rule',
                              'payments_allocated.payment_key',
                              'payments_allocated.invoice_key']) }} as application_key,
        payments.source_system,
        payments_allocated.payment_key,
        payments_allocated.invoice_key,
        cast(null as {{ dbt.type_string() }}) as credit_note_key,
        payments.currency,
        payments_allocated.amount,
        'payment' as allocation_type,
        payments_allocated.allocation_rule,
        payments_allocated.allocated_on,
        false as is_erp_recorded,
        cast(null as {{ dbt.type_string() }}) as source_allocation_key

    from payments_allocated

    inner join payments
        on payments_allocated.payment_key = payments.payment_key

),

reversal_applications as (

    select
        {{ q2c_surrogate_key(["'payment_reversal'", 'reversals.line_key',
                              'reversals.invoice_key']) }} as application_key,
        payments.source_system,
        reversals.payment_key,
        reversals.invoice_key,
        cast(null as {{ dbt.type_string() }}) as credit_note_key,
        payments.currency,
        reversals.amount,
        reversals.allocation_type,
        'payment_reversal' as allocation_rule,
        reversals.allocated_on,
        false as is_erp_recorded,
        reversals.line_key as source_allocation_key

    from reversals

    inner join payments
        on reversals.payment_key = payments.payment_key

),

applications as (

    select * from erp_applications
    union all
    select * from uncovered_fees
    union all
    select * from credit_note_applications
    union all
    select * from cash_allocations
    union all
    select * from reversal_applications

),

final as (

    select
        applications.application_key,
        applications.source_system,
        applications.payment_key,
        applications.invoice_key,
        applications.credit_note_key,
        coalesce(
            invoices.account_key, payments.account_key, credit_notes.account_key
        ) as account_key,
        applications.currency,
        cast(applications.amount as decimal(20, 4)) as amount,
        applications.allocation_type,
        applications.allocation_rule,
        applications.allocated_on,
        applications.is_erp_recorded,
        applications.source_allocation_key

    from applications

    left join invoices
        on applications.invoice_key = invoices.invoice_key

    left join payments
        on applications.payment_key = payments.payment_key

    left join credit_notes
        on applications.credit_note_key = credit_notes.credit_note_key

)

select * from final
