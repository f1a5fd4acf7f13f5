{#- Every line an ERP or gateway recorded against a payment, with what q2c makes of it.
    line_status: 'taken' when the line applies to an invoice q2c has, or is a gateway fee
    (which applies to none); 'number_only' when a payment, refund or chargeback line
    names an invoice q2c does not have but gives its number: a gateway charge paying an
    ERP invoice by number, or paying Stripe's copy of an ERP invoice (int_erp_invoices
    keeps only the ERP's). That number becomes the payment's reference for q2c's own
    allocation. 'payment_only' for a refund or chargeback that names no invoice at all:
    it follows the payment. 'unknown_invoice' when the line names an invoice q2c does
    not have and no number: the amount is not allocated again and is listed as
    unallocated cash. Signs: payments and credit notes applied are positive, refunds,
    chargebacks and fees negative. -#}
with

allocations as (

    select * from {{ ref('fct_payment_allocations') }}

),

conformed_lines as (

    select * from {{ ref('int_erp_payment_allocations') }}

),

payments as (

    select * from {{ ref('fct_payments') }}

),

invoices as (

    select * from {{ ref('fct_invoices') }}

),

invoices_all as (

    select * from {{ ref('int_erp_invoices_all') }}

),

conformed_keyed as (

    select
        {{ q2c_surrogate_key(['conformed_lines.source_system', 'conformed_lines.payment_id',
                              'conformed_lines.line_index']) }} as line_key,
        conformed_lines.*

    from conformed_lines

),

classified_lines as (

    select
        allocations.allocation_key as line_key,
        allocations.source_system,
        allocations.payment_id,
        allocations.payment_key,
        invoices.invoice_key,
        allocations.invoice_id,
        coalesce(conformed_keyed.invoice_number, invoices_all.invoice_number)
            as invoice_number,
        allocations.credit_note_key,
        allocations.allocation_type,
        allocations.allocation_date,
        allocations.currency,
        allocations.amount

    from allocations

    left join invoices
        on allocations.invoice_key = invoices.invoice_key

    left join conformed_keyed
        on allocations.allocation_key = conformed_keyed.line_key

    left join invoices_all
        on allocations.source_system = invoices_all.source_system
        and allocations.invoice_id = invoices_all.invoice_id

),

{#- Lines the classification dropped: they name only an invoice number that their own
    system does not hold, or they are refunds and chargebacks that name no invoice. -#}
unresolved_lines as (

    select
        conformed_keyed.line_key,
        conformed_keyed.source_system,
        conformed_keyed.payment_id,
        payments.payment_key,
        cast(null as {{ dbt.type_string() }}) as invoice_key,
        cast(null as {{ dbt.type_string() }}) as invoice_id,
        conformed_keyed.invoice_number,
        cast(null as {{ dbt.type_string() }}) as credit_note_key,
        coalesce(conformed_keyed.allocation_kind, 'payment') as allocation_type,
        coalesce(conformed_keyed.allocation_date, payments.payment_date) as allocation_date,
        payments.currency,
        conformed_keyed.amount

    from conformed_keyed

    inner join payments
        on conformed_keyed.source_system = payments.source_system
        and conformed_keyed.payment_id = payments.payment_id

    where conformed_keyed.invoice_id is null
        and (
            conformed_keyed.invoice_number is not null
            or conformed_keyed.allocation_kind in ('refund', 'chargeback')
        )
        and not exists (
            select 1 from allocations
            where allocations.allocation_key = conformed_keyed.line_key
        )

),

lines as (

    select * from classified_lines
    union all
    select * from unresolved_lines

),

final as (

    select
        line_key,
        source_system,
        payment_id,
        payment_key,
        invoice_key,
        invoice_id,
        invoice_number,
        credit_note_key,
        allocation_type,
        allocation_date,
        currency,
        cast(
            case
                when allocation_type in ('refund', 'chargeback', 'fee') then -abs(amount)
                else amount
            end
            as decimal(20, 4)
        ) as amount,
        case
            when invoice_key is not null or allocation_type = 'fee' then 'taken'
            when invoice_number is not null
                and payment_key is not null
                and allocation_type in ('payment', 'refund', 'chargeback')
                then 'number_only'
            when invoice_id is null
                and payment_key is not null
                and allocation_type in ('refund', 'chargeback')
                then 'payment_only'
            else 'unknown_invoice'
        end as line_status

    from lines

)

select * from final
