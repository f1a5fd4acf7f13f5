{#- CRM quotes (opportunities, deals) with their handoff to billing: the invoices that name
    the quote (crm_opportunity_id on the ERP invoice) carry its lineage. A won quote counts
    as accepted on its close date. -#}
with

quotes as (

    select * from {{ ref('int_crm_opportunities') }}

),

crosswalk as (

    select * from {{ ref('int_accounts_crosswalk') }}

),

users as (

    select * from {{ ref('int_crm_users') }}

),

invoices as (

    select * from {{ ref('fct_invoices') }}

),

invoiced as (

    select
        crm_opportunity_id,
        count(*) as invoice_count,
        min(issue_date) as first_invoice_issue_date,
        min(invoice_key) as any_invoice_key

    from invoices

    where crm_opportunity_id is not null

    group by crm_opportunity_id

),

first_invoices as (

    select
        crm_opportunity_id,
        invoice_key,
        total_amount,
        currency,
        row_number() over (
            partition by crm_opportunity_id order by issue_date, invoice_number, invoice_key
        ) as invoice_rank

    from invoices

    where crm_opportunity_id is not null

),

invoiced_amounts as (

    select
        crm_opportunity_id,
        sum(total_amount) as invoiced_amount

    from invoices

    where crm_opportunity_id is not null

    group by crm_opportunity_id

),

final as (

    select
        {{ q2c_surrogate_key(['quotes.source_system', 'quotes.opportunity_id']) }}
            as quote_key,
        quotes.source_system,
        quotes.opportunity_id as source_id,
        quotes.opportunity_id,
        crosswalk.account_key,
        quotes.owner_id,
        users.user_name as owner_name,
        quotes.opportunity_name as quote_name,
        quotes.stage_name,
        quotes.opportunity_type as quote_type,
        quotes.currency_code as currency,
        quotes.amount,
        coalesce(quotes.is_closed, false) as is_closed,
        coalesce(quotes.is_won, false) as is_won,
        quotes.close_date,
        case when quotes.is_won then quotes.close_date end as accepted_date,
        coalesce(invoiced.invoice_count, 0) as invoice_count,
        first_invoices.invoice_key as first_invoice_key,
        invoiced.first_invoice_issue_date,
        cast(coalesce(invoiced_amounts.invoiced_amount, 0) as decimal(20, 4))
            as invoiced_amount,
        quotes.created_at,
        quotes.updated_at

    from quotes

    left join crosswalk
        on quotes.source_system = crosswalk.crm_source_system
        and quotes.account_id = crosswalk.crm_account_id

    left join users
        on quotes.source_system = users.source_system
        and quotes.owner_id = users.user_id

    left join invoiced
        on quotes.opportunity_id = invoiced.crm_opportunity_id

    left join first_invoices
        on quotes.opportunity_id = first_invoices.crm_opportunity_id
        and first_invoices.invoice_rank = 1

    left join invoiced_amounts
        on quotes.opportunity_id = invoiced_amounts.crm_opportunity_id

)

select * from final
