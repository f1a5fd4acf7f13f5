{#- What each payment says about the invoices it pays, normalized for matching
    (macros/q2c_references.sql): its remittance reference (reference_kind 'remittance',
    free text that may hold invoice numbers) and every invoice number its own lines name
    that its system does not hold (reference_kind 'named_invoice', a whole number). An ERP
    payment that records a gateway charge (int_gateway_charge_erp_matches) also names the
    invoices the charge names: its reference is the charge id, and the charge's cash is
    allocated as this payment only. -#}
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

named_by_recorded_charges as (

    select
        charge_matches.payment_key,
        named_invoices.reference_kind,
        named_invoices.reference_text

    from named_invoices

    inner join charge_matches
        on named_invoices.payment_key = charge_matches.charge_payment_key

),

unioned as (

    select * from remittances
    union all
    select * from named_invoices
    union all
    select * from named_by_recorded_charges

),

final as (

    select distinct
        payment_key,
        reference_kind,
        reference_text

    from unioned

    where reference_text is not null

)

select * from final
