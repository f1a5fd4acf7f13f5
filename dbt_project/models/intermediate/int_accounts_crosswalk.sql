{#- Matches each CRM account to at most one ERP customer, in three steps that each take
    only what the earlier steps left: the external id (account_number = customer id), then
    the VAT / tax id, then the normalized company name together with the web domain.
    Whatever stays unmatched is kept on its own as crm_only or erp_only. -#}
with

crm_accounts as (

    select * from {{ ref('int_crm_accounts_prepared') }}

),

erp_customers as (

    select * from {{ ref('int_erp_customers_prepared') }}

),

external_id_candidates as (

    select
        crm_accounts.crm_account_id,
        erp_customers.erp_customer_id,
        'external_id' as match_method

    from crm_accounts

    inner join erp_customers
        on crm_accounts.account_number = erp_customers.erp_customer_id

),

external_id_matches as (

    {{ q2c_one_to_one('external_id_candidates') }}

),

tax_id_candidates as (

    select
        crm_accounts.crm_account_id,
        erp_customers.erp_customer_id,
        'tax_id' as match_method

    from crm_accounts

    inner join erp_customers
        on crm_accounts.tax_id_normalized = erp_customers.tax_id_normalized

    where not exists (
            select 1 from external_id_matches as matched
            where matched.crm_account_id = crm_accounts.crm_account_id
        )
        and not exists (
            select 1 from external_id_matches as matched
            where matched.erp_customer_id = erp_customers.erp_customer_id
        )

),

tax_id_matches as (

    {{ q2c_one_to_one('tax_id_candidates') }}

),

matched_before_name as (

    select * from external_id_matches
    union all
    select * from tax_id_matches

),

name_domain_candidates as (

    select distinct
        crm_accounts.crm_account_id,
        erp_customers.erp_customer_id,
        'name_domain' as match_method

    from crm_accounts

    inner join erp_customers
        on crm_accounts.web_domain = erp_customers.web_domain
        and (
            crm_accounts.name_normalized = erp_customers.company_name_normalized
            or crm_accounts.name_normalized = erp_customers.display_name_normalized
        )

    where not exists (
            select 1 from matched_before_name as matched
            where matched.crm_account_id = crm_accounts.crm_account_id
        )
        and not exists (
            select 1 from matched_before_name as matched
            where matched.erp_customer_id = erp_customers.erp_customer_id
        )

),

name_domain_matches as (

    {{ q2c_one_to_one('name_domain_candidates') }}

),

matches as (

    select * from matched_before_name
    union all
    select * from name_domain_matches

),

crm_only as (

    select
        crm_accounts.crm_account_id,
        cast(null as {{ dbt.type_string() }}) as erp_customer_id,
        'crm_only' as match_method

    from crm_accounts

    where not exists (
        select 1 from matches
        where matches.crm_account_id = crm_accounts.crm_account_id
    )

),

erp_only as (

    select
        cast(null as {{ dbt.type_string() }}) as crm_account_id,
        erp_customers.erp_customer_id,
        'erp_only' as match_method

    from erp_customers

    where not exists (
        select 1 from matches
        where matches.erp_customer_id = erp_customers.erp_customer_id
    )

),

crosswalk as (

    select * from matches
    union all
    select * from crm_only
    union all
    select * from erp_only

),

{#- The key follows the ERP customer when there is one, so an account's invoices keep
    their account_key when a CRM match appears later. -#}
final as (

    select
        case
            when erp_customer_id is not null
                then {{ q2c_surrogate_key(["'quickbooks'", 'erp_customer_id']) }}
            else {{ q2c_surrogate_key(["'salesforce'", 'crm_account_id']) }}
        end as account_key,
        crm_account_id,
        erp_customer_id,
        match_method

    from crosswalk

)

select * from final
