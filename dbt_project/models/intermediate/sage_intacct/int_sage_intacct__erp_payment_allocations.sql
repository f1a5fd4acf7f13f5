with

applications as (

    select * from {{ ref('int_sage_intacct__payment_applications') }}

),

invoices as (

    select invoice_id, invoice_number from {{ ref('stg_sage_intacct__ar_invoices') }}

),

final as (

    select
        applications.payment_id,
        cast(row_number() over (
            partition by applications.payment_id
            order by applications.payment_detail_id, applications.allocation_kind
        ) as integer) as line_index,
        applications.invoice_id,
        invoices.invoice_number,
        applications.credit_note_id,
        applications.allocation_kind,
        applications.amount,
        applications.allocation_date

    from applications

    left join invoices
        on applications.invoice_id = invoices.invoice_id

)

select * from final
