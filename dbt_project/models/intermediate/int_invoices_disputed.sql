{#- Invoice numbers under an open billing dispute: a CRM interaction that contests an
    invoice (a Salesforce 'Billing Dispute' case, a HubSpot dispute ticket), not closed. -#}
with

interactions as (

    select * from {{ ref('int_crm_interactions') }}

),

final as (

    select
        invoice_number,
        count(*) as open_dispute_count,
        min(created_at) as first_disputed_at

    from interactions

    where is_dispute
        and not coalesce(is_closed, false)
        and invoice_number is not null

    group by invoice_number

)

select * from final
