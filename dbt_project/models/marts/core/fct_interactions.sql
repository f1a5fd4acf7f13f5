{#- Every CRM interaction with a customer: cases, tickets, calls, e-mails, meetings, notes,
    tasks and promises to pay, on the account they concern and, where they name one, the
    invoice. -#}
with

interactions as (

    select * from {{ ref('int_crm_interactions') }}

),

crosswalk as (

    select * from {{ ref('int_accounts_crosswalk') }}

),

invoices as (

    select invoice_key, invoice_number from {{ ref('fct_invoices') }}

),

invoice_numbers as (

    select
        invoice_number,
        min(invoice_key) as invoice_key,
        count(*) as invoices_with_number

    from invoices

    group by invoice_number

),

final as (

    select
        {{ q2c_surrogate_key(['interactions.source_system', 'interactions.interaction_type',
                              'interactions.interaction_id']) }} as interaction_key,
        interactions.source_system,
        interactions.interaction_id as source_id,
        crosswalk.account_key,
        interactions.contact_id,
        interactions.owner_id,
        interactions.interaction_type,
        interactions.reference_number,
        interactions.subject,
        interactions.category,
        coalesce(interactions.is_billing, false) as is_billing,
        coalesce(interactions.is_dispute, false) as is_dispute,
        interactions.invoice_number,
        {#- An invoice number two systems share names no single invoice. -#}
        case
            when invoice_numbers.invoices_with_number = 1 then invoice_numbers.invoice_key
        end as invoice_key,
        interactions.status,
        interactions.priority,
        interactions.channel,
        coalesce(interactions.is_closed, false) as is_closed,
        interactions.contact_count,
        interactions.promised_amount,
        interactions.promised_currency_code as promised_currency,
        interactions.promised_date,
        interactions.created_at,
        interactions.closed_at

    from interactions

    left join crosswalk
        on interactions.source_system = crosswalk.crm_source_system
        and interactions.account_id = crosswalk.crm_account_id

    left join invoice_numbers
        on interactions.invoice_number = invoice_numbers.invoice_number

)

select * from final
