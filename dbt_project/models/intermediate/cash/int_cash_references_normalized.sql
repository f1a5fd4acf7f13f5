{#- What each payment says about the invoices it pays, normalized for matching
    (macros/q2c_references.sql): its remittance reference (reference_kind 'remittance',
    free text that may hold invoice numbers) and every invoice number its own lines name
    that its system does not hold (reference_kind 'named_invoice', a whole number). -#}
with

payments as (

    select * from {{ ref('fct_payments') }}

),

lines as (

    select * from {{ ref('int_cash_payment_lines_resolved') }}

),

remittances as (

    select
        payment_key,
        'remittance' as reference_kind,
        {{ q2c_normalize_reference('reference_number') }} as reference_text

    from payments

),

named_invoices as (

    select distinct
        payment_key,
        'named_invoice' as reference_kind,
        {{ q2c_normalize_reference('invoice_number') }} as reference_text

    from lines

    where line_status = 'number_only'
        and payment_key is not null

),

final as (

    select * from remittances
    union all
    select * from named_invoices

)

select * from final
where reference_text is not null
