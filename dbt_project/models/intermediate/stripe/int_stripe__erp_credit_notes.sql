{#- Issued Stripe credit notes in the conformed erp_credit_notes shape; void ones credit
    nothing and are left out, as are test-mode ones unless var
    q2c_stripe_include_test_mode. Stripe's credit note names no customer in Fivetran's
    schema: it is the customer of the credited invoice. Tax is what the note adds on top of
    its discounted subtotal (total = subtotal - discount + exclusive tax). Stripe applies a
    credit note at once (to the invoice's amount due, as a refund, out of band or to the
    customer's balance, which the next invoice draws on), so no credit stays open on the
    note: remaining_credit_amount is 0. -#}
with

credit_notes as (

    select * from {{ ref('stg_stripe__credit_notes') }}

),

invoices as (

    select * from {{ ref('stg_stripe__invoices') }}

),

final as (

    select
        credit_notes.credit_note_id,
        credit_notes.credit_note_number,
        invoices.customer_id,
        credit_notes.invoice_id,
        credit_notes.currency_code,
        cast(null as decimal(20, 10)) as exchange_rate,
        credit_notes.total_amount,
        credit_notes.total_amount
            - credit_notes.subtotal_amount
            + coalesce(credit_notes.discount_amount, 0) as tax_amount,
        cast(0 as decimal(20, 4)) as remaining_credit_amount,
        coalesce(credit_notes.reason, credit_notes.memo) as reason,
        cast(credit_notes.created_at as date) as issue_date,
        credit_notes.created_at,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at

    from credit_notes

    left join invoices
        on credit_notes.invoice_id = invoices.invoice_id

    where coalesce(credit_notes.status, '') <> 'void'
    {%- if not var('q2c_stripe_include_test_mode', false) %}
        and coalesce(credit_notes.is_livemode, true)
    {%- endif %}

)

select * from final
