{#- Every application within a Sage Intacct AR payment, one row per kind: cash paid to an
    invoice, and credit of an adjustment (a credit memo) applied to it. Details of deleted
    or missing payments are dropped. -#}
with

details as (

    select * from {{ ref('stg_sage_intacct__ar_payment_details') }}

),

payments as (

    select * from {{ ref('stg_sage_intacct__ar_payments') }}

),

applications as (

    select
        payment_detail_id,
        payment_id,
        invoice_id,
        cast(null as {{ dbt.type_string() }}) as credit_note_id,
        'payment' as allocation_kind,
        payment_amount as amount,
        payment_date

    from details

    where payment_amount <> 0
        or (payment_amount is null and unparsed_fields is not null)

    union all

    select
        payment_detail_id,
        payment_id,
        invoice_id,
        adjustment_id as credit_note_id,
        'credit_note' as allocation_kind,
        adjustment_amount as amount,
        payment_date

    from details

    where adjustment_id is not null

),

final as (

    select
        applications.payment_detail_id,
        applications.payment_id,
        applications.invoice_id,
        applications.credit_note_id,
        applications.allocation_kind,
        applications.amount,
        coalesce(
            applications.payment_date, payments.paid_date, payments.receipt_date
        ) as allocation_date

    from applications

    inner join payments
        on applications.payment_id = payments.payment_id

)

select * from final
