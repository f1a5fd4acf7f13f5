{#- The invoices of record. Stripe is a billing system as well as a gateway: when Stripe and
    an ERP both carry an invoice number (compared without case and surrounding spaces), the
    ERP's invoice is the record and Stripe's copy is left out here
    (mart_source_amount_differences reports where their amounts disagree). -#}
with

invoices as (

    select * from {{ ref('int_erp_invoices_all') }}

),

erp_numbers as (

    select distinct upper(trim(invoice_number)) as invoice_number
    from invoices
    where source_system <> 'stripe'
        and invoice_number is not null

)

select invoices.*

from invoices

where invoices.source_system <> 'stripe'
    or invoices.invoice_number is null
    or not exists (
        select 1 from erp_numbers
        where erp_numbers.invoice_number = upper(trim(invoices.invoice_number))
    )
