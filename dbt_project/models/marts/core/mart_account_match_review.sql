{#- CRM accounts and ERP customers the crosswalk left unmatched, for a person to decide.
    Nothing here is merged: each row says why it stayed alone and which records on the
    other side look like it (an account number naming its id, the same tax id, the same
    normalized name or the same web domain).
    reason: ambiguous (several look-alikes, so no step could choose), look_alike (exactly
    one, but not on a key the crosswalk trusts alone, e.g. same name on another domain) or
    no_candidate. -#}
with

crosswalk as (

    select * from {{ ref('int_accounts_crosswalk') }}

),

crm_accounts as (

    select * from {{ ref('int_crm_accounts_prepared') }}

),

erp_customers as (

    select * from {{ ref('int_erp_customers_prepared') }}

),

unmatched_crm as (

    select crm_accounts.*, crosswalk.account_key

    from crosswalk

    inner join crm_accounts
        on crosswalk.crm_ref = crm_accounts.crm_ref

    where crosswalk.match_method = 'crm_only'

),

unmatched_erp as (

    select erp_customers.*, crosswalk.account_key

    from crosswalk

    inner join erp_customers
        on crosswalk.erp_ref = erp_customers.erp_ref

    where crosswalk.match_method = 'erp_only'

),

crm_look_alikes as (

    select
        unmatched_crm.crm_ref,
        erp_customers.erp_ref as candidate_ref

    from unmatched_crm

    inner join erp_customers
        on unmatched_crm.account_number = erp_customers.erp_customer_id
        or unmatched_crm.tax_id_normalized = erp_customers.tax_id_normalized
        or unmatched_crm.name_normalized = erp_customers.company_name_normalized
        or unmatched_crm.name_normalized = erp_customers.display_name_normalized
        or unmatched_crm.web_domain = erp_customers.web_domain

),

erp_look_alikes as (

    select
        unmatched_erp.erp_ref,
        crm_accounts.crm_ref as candidate_ref

    from unmatched_erp

    inner join crm_accounts
        on crm_accounts.account_number = unmatched_erp.erp_customer_id
        or unmatched_erp.tax_id_normalized = crm_accounts.tax_id_normalized
        or unmatched_erp.company_name_normalized = crm_accounts.name_normalized
        or unmatched_erp.display_name_normalized = crm_accounts.name_normalized
        or unmatched_erp.web_domain = crm_accounts.web_domain

),

crm_rows as (

    select
        'crm' as side,
        unmatched_crm.crm_source_system as source_system,
        unmatched_crm.crm_account_id as source_id,
        unmatched_crm.account_key,
        unmatched_crm.account_name,
        unmatched_crm.vat_number as tax_id,
        unmatched_crm.web_domain,
        count(crm_look_alikes.candidate_ref) as candidate_count,
        {{ q2c_sorted_list('crm_look_alikes.candidate_ref', ', ') }} as candidates

    from unmatched_crm

    left join crm_look_alikes
        on unmatched_crm.crm_ref = crm_look_alikes.crm_ref

    group by 1, 2, 3, 4, 5, 6, 7

),

erp_rows as (

    select
        'erp' as side,
        unmatched_erp.erp_source_system as source_system,
        unmatched_erp.erp_customer_id as source_id,
        unmatched_erp.account_key,
        unmatched_erp.customer_name as account_name,
        unmatched_erp.tax_id,
        unmatched_erp.web_domain,
        count(erp_look_alikes.candidate_ref) as candidate_count,
        {{ q2c_sorted_list('erp_look_alikes.candidate_ref', ', ') }} as candidates

    from unmatched_erp

    left join erp_look_alikes
        on unmatched_erp.erp_ref = erp_look_alikes.erp_ref

    group by 1, 2, 3, 4, 5, 6, 7

),

unioned as (

    select * from crm_rows
    union all
    select * from erp_rows

),

final as (

    select
        {{ q2c_surrogate_key(['side', 'source_system', 'source_id']) }} as review_key,
        side,
        source_system,
        source_id,
        account_key,
        account_name,
        tax_id,
        web_domain,
        case
            when candidate_count > 1 then 'ambiguous'
            when candidate_count = 1 then 'look_alike'
            else 'no_candidate'
        end as reason,
        candidate_count,
        candidates

    from unioned

)

select * from final
