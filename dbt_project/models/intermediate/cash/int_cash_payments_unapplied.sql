{#- Every payment with what its ERP (or gateway) applied and what it left for q2c to
    allocate. unapplied_amount = amount less the cash lines applied to invoices q2c has
    and less the lines applied to invoices q2c does not have (those stay unallocated as
    they are, never moved to another invoice). A gateway charge that names only an ERP
    invoice number counts as unapplied here and is allocated by that reference. The
    refunds and chargebacks of such a charge, and those that name no invoice
    (reversal_amount, positive), follow the allocation q2c makes of the payment
    (int_cash_reversals_followed). -#}
with

payments as (

    select * from {{ ref('fct_payments') }}

),

lines as (

    select * from {{ ref('int_cash_payment_lines_resolved') }}

),

applied as (

    select
        payment_key,
        sum(
            case
                when line_status = 'taken' and allocation_type = 'payment' then amount
            end
        ) as erp_applied_amount,
        sum(
            case
                when line_status = 'unknown_invoice' and allocation_type = 'payment'
                    then amount
            end
        ) as unknown_invoice_amount,
        sum(
            case
                when line_status in ('number_only', 'payment_only')
                    and allocation_type in ('refund', 'chargeback')
                    then -amount
            end
        ) as reversal_amount

    from lines

    where payment_key is not null

    group by payment_key

),

joined as (

    select
        payments.payment_key,
        payments.source_system,
        payments.payment_id,
        payments.account_key,
        payments.currency,
        payments.payment_date,
        payments.reference_number,
        payments.amount as payment_amount,
        payments.unapplied_amount as erp_unapplied_amount,
        coalesce(applied.erp_applied_amount, 0) as erp_applied_amount,
        coalesce(applied.unknown_invoice_amount, 0) as unknown_invoice_amount,
        coalesce(applied.reversal_amount, 0) as reversal_amount

    from payments

    left join applied
        on payments.payment_key = applied.payment_key

),

final as (

    select
        payment_key,
        source_system,
        payment_id,
        account_key,
        currency,
        payment_date,
        reference_number,
        cast(payment_amount as decimal(20, 4)) as payment_amount,
        cast(erp_unapplied_amount as decimal(20, 4)) as erp_unapplied_amount,
        cast(erp_applied_amount as decimal(20, 4)) as erp_applied_amount,
        cast(unknown_invoice_amount as decimal(20, 4)) as unknown_invoice_amount,
        cast(reversal_amount as decimal(20, 4)) as reversal_amount,
        cast(
            case
                when coalesce(payment_amount, 0) - erp_applied_amount
                    - unknown_invoice_amount > 0
                    then coalesce(payment_amount, 0) - erp_applied_amount
                    - unknown_invoice_amount
                else 0
            end
            as decimal(20, 4)
        ) as unapplied_amount

    from joined

)

select * from final
