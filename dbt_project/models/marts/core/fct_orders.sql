{#- The handoff from sales to billing: one order per won quote, dated when the quote was
    accepted, with what billing made of it so far. Invoices name the quote they bill
    (crm_opportunity_id), and an ERP that records its sales order passes order_id on. -#}
with

quotes as (

    select * from {{ ref('fct_quotes') }}
    where is_won

),

invoices as (

    select * from {{ ref('fct_invoices') }}
    where crm_opportunity_id is not null

),

order_ids as (

    select
        crm_opportunity_id,
        min(order_id) as erp_order_id

    from invoices

    group by crm_opportunity_id

),

final as (

    select
        {{ q2c_surrogate_key(['quotes.source_system', 'quotes.opportunity_id']) }}
            as order_key,
        quotes.source_system,
        quotes.source_id,
        quotes.quote_key,
        quotes.opportunity_id,
        order_ids.erp_order_id,
        quotes.account_key,
        quotes.owner_name,
        quotes.accepted_date as order_date,
        quotes.currency,
        quotes.amount as order_amount,
        quotes.invoice_count,
        quotes.first_invoice_key,
        quotes.first_invoice_issue_date,
        quotes.invoiced_amount,
        case
            when quotes.invoice_count = 0 then 'not_invoiced'
            when quotes.invoiced_amount < quotes.amount then 'partly_invoiced'
            else 'invoiced'
        end as billing_status

    from quotes

    left join order_ids
        on quotes.opportunity_id = order_ids.crm_opportunity_id

)

select * from final
