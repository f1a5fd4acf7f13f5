{#- Every payment with what its ERP (or gateway) applied and what it left for q2c to
    allocate. unapplied_amount = amount less the cash lines applied to invoices q2c has
    and less the lines applied to invoices q2c does not have (those stay unallocated as
    they are, never moved to another invoice). A gateway charge that names only an ERP
    invoice number counts as unapplied here and is allocated by that reference. The
    refunds and chargebacks of such a charge, and those that name no invoice
    (reversal_amount, positive), follow the allocation q2c makes of the payment
    (int_cash_reversals_followed).

    A gateway charge that an ERP payment records (int_gateway_charge_erp_matches) is the
    same money as that ERP payment: recorded_by_payment_key names the first such payment,
    and the charge leaves nothing for q2c to allocate, to reverse or to list as
    unallocated. Its cash is allocated once, as the ERP payment. -#}
with

payments as (

    select * from {{ ref('fct_payments') }}

),

lines as (

    select * from {{ ref('int_cash_payment_lines_resolved') }}

),

charge_matches as (

    select * from {{ ref('int_gateway_charge_erp_matches') }}

),

recorded_charges as (

    select
        charge_payment_key,
        payment_key as recorded_by_payment_key

    from charge_matches

    where match_rank = 1

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
        case
            when recorded_charges.recorded_by_payment_key is null
                then coalesce(applied.unknown_invoice_amount, 0)
            else 0
        end as unknown_invoice_amount,
        case
            when recorded_charges.recorded_by_payment_key is null
                then coalesce(applied.reversal_amount, 0)
            else 0
        end as reversal_amount,
        recorded_charges.recorded_by_payment_key

    from payments

    left join applied
        on payments.payment_key = applied.payment_key

    left join recorded_charges
        on payments.payment_key = recorded_charges.charge_payment_key

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
                when recorded_by_payment_key is not null then 0
                when coalesce(payment_amount, 0) - erp_applied_amount
                    - unknown_invoice_amount > 0
                    then coalesce(payment_amount, 0) - erp_applied_amount
                    - unknown_invoice_amount
                else 0
            end
            as decimal(20, 4)
        ) as unapplied_amount,
        recorded_by_payment_key

    from joined

)

select * from final
