{#- Matches each CRM account to at most one ERP customer, in three steps that each take
    only what the earlier steps left: the external id (account_number = customer id), then
    the VAT / tax id, then the normalized company name together with the web domain. A step
    never picks among several candidates: an ambiguous account stays unmatched. Whatever
    stays unmatched is kept on its own as crm_only or erp_only and listed for review in
    mart_account_match_review. Accounts and customers are qualified by their system
    (crm_ref, erp_ref), so several CRMs and ERPs can be matched at once. -#}
with

crm_accounts as (

    select * from {{ ref('int_crm_accounts_prepared') }}

),

erp_customers as (

    select * from {{ ref('int_erp_customers_prepared') }}

),

external_id_candidates as (

    select
        crm_accounts.crm_ref,
        erp_customers.erp_ref,
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
        crm_accounts.crm_ref,
        erp_customers.erp_ref,
        'tax_id' as match_method

    from crm_accounts

    inner join erp_customers
        on crm_accounts.tax_id_normalized = erp_customers.tax_id_normalized

    where not exists (
            select 1 from external_id_matches as matched
            where matched.crm_ref = crm_accounts.crm_ref
        )
        and not exists (
            select 1 from external_id_matches as matched
            where matched.erp_ref = erp_customers.erp_ref
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
        crm_accounts.crm_ref,
        erp_customers.erp_ref,
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
            where matched.crm_ref = crm_accounts.crm_ref
        )
        and not exists (
            select 1 from matched_before_name as matched
            where matched.erp_ref = erp_customers.erp_ref
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
        crm_accounts.crm_ref,
        cast(null as {{ dbt.type_string() }}) as erp_ref,
        'crm_only' as match_method

    from crm_accounts

    where not exists (
        select 1 from matches
        where matches.crm_ref = crm_accounts.crm_ref
    )

),

erp_only as (

    select
        cast(null as {{ dbt.type_string() }}) as crm_ref,
        erp_customers.erp_ref,
        'erp_only' as match_method

    from erp_customers

    where not exists (
        select 1 from matches
        where matches.erp_ref = erp_customers.erp_ref
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
            when crosswalk.erp_ref is not null
                then {{ q2c_surrogate_key(['erp_customers.erp_source_system',
                                           'erp_customers.erp_customer_id']) }}
            else {{ q2c_surrogate_key(['crm_accounts.crm_source_system',
                                       'crm_accounts.crm_account_id']) }}
        end as account_key,
        crosswalk.crm_ref,
        crosswalk.erp_ref,
        crm_accounts.crm_source_system,
        crm_accounts.crm_account_id,
        erp_customers.erp_source_system,
        erp_customers.erp_customer_id,
        crosswalk.match_method

    from crosswalk

    left join crm_accounts
        on crosswalk.crm_ref = crm_accounts.crm_ref

    left join erp_customers
        on crosswalk.erp_ref = erp_customers.erp_ref

)

select * from final
