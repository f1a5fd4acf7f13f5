{#- What each succeeded Stripe charge applies, one row per movement, in the charge's
    currency. A charge that names an invoice (Stripe invoice id and number, or only the
    invoice number from q2c's portal metadata) pays it in full ('payment'); each succeeded
    or pending refund of it gives the money back ('refund', negative) and a lost dispute
    takes it back ('chargeback', negative), both against the same invoice. The gateway fee
    ('fee', negative) is the seller's cost of the charge, kept whether or not the charge
    names an invoice; it never settles one. Failed and canceled refunds and won or open
    disputes moved no money and give no row. line_index numbers a charge's rows from 1:
    payment, fee, refunds, chargebacks, each in time order. -#}
with

charges as (

    select * from {{ ref('int_stripe__charges_succeeded') }}

),

refunds as (

    select * from {{ ref('stg_stripe__refunds') }}

),

disputes as (

    select * from {{ ref('stg_stripe__disputes') }}

),

invoiced_charges as (

    select * from charges
    where invoice_id is not null or invoice_number is not null

),

payment_rows as (

    select
        charge_id as payment_id,
        1 as kind_order,
        charge_id as movement_id,
        invoice_id,
        invoice_number,
        'payment' as allocation_kind,
        amount,
        payment_date as allocation_date

    from invoiced_charges

),

fee_rows as (

    select
        charge_id as payment_id,
        2 as kind_order,
        balance_transaction_id as movement_id,
        invoice_id,
        invoice_number,
        'fee' as allocation_kind,
        -fee_amount as amount,
        payment_date as allocation_date

    from charges

    where fee_amount is not null
        and fee_amount <> 0

),

refund_rows as (

    select
        invoiced_charges.charge_id as payment_id,
        3 as kind_order,
        refunds.refund_id as movement_id,
        invoiced_charges.invoice_id,
        invoiced_charges.invoice_number,
        'refund' as allocation_kind,
        -refunds.amount as amount,
        cast(refunds.created_at as date) as allocation_date

    from refunds

    inner join invoiced_charges
        on refunds.charge_id = invoiced_charges.charge_id

    where refunds.status in ('succeeded', 'pending')

),

chargeback_rows as (

    select
        invoiced_charges.charge_id as payment_id,
        4 as kind_order,
        disputes.dispute_id as movement_id,
        invoiced_charges.invoice_id,
        invoiced_charges.invoice_number,
        'chargeback' as allocation_kind,
        -disputes.amount as amount,
        cast(disputes.created_at as date) as allocation_date

    from disputes

    inner join invoiced_charges
        on disputes.charge_id = invoiced_charges.charge_id

    where disputes.status = 'lost'

),

movements as (

    select * from payment_rows
    union all
    select * from fee_rows
    union all
    select * from refund_rows
    union all
    select * from chargeback_rows

),

final as (

    select
        payment_id,
        cast(row_number() over (
            partition by payment_id
            order by kind_order, allocation_date, movement_id
        ) as integer) as line_index,
        invoice_id,
        invoice_number,
        cast(null as {{ dbt.type_string() }}) as credit_note_id,
        allocation_kind,
        cast(amount as decimal(20, 4)) as amount,
        allocation_date,
        movement_id

    from movements

)

select * from final
