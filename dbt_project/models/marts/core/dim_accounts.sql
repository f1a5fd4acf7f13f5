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

country_defaults as (

    select * from {{ ref('country_defaults') }}

),

language_defaults as (

    select * from {{ ref('language_defaults') }}

),

crm_users as (

    select * from {{ ref('int_crm_users') }}

),

joined as (

    select
        crosswalk.account_key,
        crosswalk.crm_source_system,
        crosswalk.crm_account_id,
        crosswalk.erp_source_system,
        crosswalk.erp_customer_id,
        crosswalk.match_method,
        crm_users.user_name as owner_name,
        crm_users.email as owner_email,
        coalesce(crm_accounts.account_name, erp_customers.customer_name) as account_name,
        coalesce(crm_parent.account_key, erp_parent.account_key) as parent_account_key,
        crm_accounts.segment,
        coalesce(crm_accounts.country_code, erp_customers.country_code) as country_code,
        crm_accounts.preferred_language,
        coalesce(erp_customers.currency_code, crm_accounts.currency_code) as currency,
        coalesce(erp_customers.email, crm_accounts.billing_email) as billing_email,
        coalesce(
            crm_accounts.billing_contact_name,
            erp_customers.contact_name
        ) as billing_contact_name,
        {#- The address is taken whole from one system, CRM first, never mixed. -#}
        coalesce(crm_accounts.has_billing_address, false) as use_crm_address,
        crm_accounts.billing_street as crm_street,
        crm_accounts.billing_city as crm_city,
        crm_accounts.billing_postal_code as crm_postal_code,
        crm_accounts.billing_region as crm_region,
        crm_accounts.country_code as crm_country_code,
        erp_customers.billing_street as erp_street,
        erp_customers.billing_city as erp_city,
        erp_customers.billing_postal_code as erp_postal_code,
        erp_customers.billing_region as erp_region,
        erp_customers.country_code as erp_country_code,
        coalesce(crm_accounts.vat_number, erp_customers.tax_id) as vat_id,
        erp_customers.preferred_delivery_method as delivery_preference,
        crm_accounts.invoice_delivery_channel,
        crm_accounts.einvoice_format,
        crm_accounts.peppol_participant_id,
        crm_accounts.x12_partner,
        coalesce(crm_accounts.email_consent, true) as email_consent,
        erp_customers.payment_term_days

    from crosswalk

    left join crm_accounts
        on crosswalk.crm_ref = crm_accounts.crm_ref

    left join erp_customers
        on crosswalk.erp_ref = erp_customers.erp_ref

    left join crosswalk as crm_parent
        on crm_accounts.crm_source_system = crm_parent.crm_source_system
        and crm_accounts.parent_account_id = crm_parent.crm_account_id

    left join crosswalk as erp_parent
        on erp_customers.erp_source_system = erp_parent.erp_source_system
        and erp_customers.parent_customer_id = erp_parent.erp_customer_id

    left join crm_users
        on crm_accounts.crm_source_system = crm_users.source_system
        and crm_accounts.owner_id = crm_users.user_id

),

localized as (

    select
        joined.*,
        coalesce(
            joined.preferred_language,
            country_defaults.language,
            'en'
        ) as language,
        case
            when joined.preferred_language is null
                then coalesce(country_defaults.locale, 'en_US')
            when joined.preferred_language = country_defaults.language
                then country_defaults.locale
            else coalesce(language_defaults.locale, joined.preferred_language)
        end as locale

    from joined

    left join country_defaults
        on joined.country_code = country_defaults.country_code

    left join language_defaults
        on joined.preferred_language = language_defaults.language

),

final as (

    select
        account_key,
        coalesce(erp_source_system, crm_source_system) as source_system,
        coalesce(erp_customer_id, crm_account_id) as source_id,
        crm_source_system,
        crm_account_id,
        erp_source_system,
        erp_customer_id,
        match_method,
        account_name,
        parent_account_key,
        owner_name,
        owner_email,
        segment,
        country_code,
        language,
        locale,
        currency,
        billing_email,
        billing_contact_name,
        case when use_crm_address then crm_street else erp_street end as billing_street,
        case when use_crm_address then crm_city else erp_city end as billing_city,
        case
            when use_crm_address then crm_postal_code else erp_postal_code
        end as billing_postal_code,
        case when use_crm_address then crm_region else erp_region end as billing_region,
        coalesce(
            case when use_crm_address then crm_country_code else erp_country_code end,
            country_code
        ) as billing_country_code,
        vat_id,
        delivery_preference,
        invoice_delivery_channel,
        einvoice_format,
        peppol_participant_id,
        x12_partner,
        email_consent,
        payment_term_days,
        case
            when crm_source_system is not null and erp_source_system is not null
                then {{ dbt.concat(['crm_source_system', "','", 'erp_source_system']) }}
            else coalesce(crm_source_system, erp_source_system)
        end as source_systems

    from localized

),

{#- The top of each account's hierarchy, followed up to five levels; deeper chains (and
    cycles, which a CRM should not allow) stop at the fifth parent. -#}
hierarchy as (

    select
        final.*,
        coalesce(
            level_5.account_key, level_4.account_key, level_3.account_key,
            level_2.account_key, level_1.account_key, final.account_key
        ) as ultimate_parent_account_key,
        case
            when level_1.account_key is null then 0
            when level_2.account_key is null then 1
            when level_3.account_key is null then 2
            when level_4.account_key is null then 3
            when level_5.account_key is null then 4
            else 5
        end as hierarchy_depth

    from final

    left join final as level_1
        on final.parent_account_key = level_1.account_key
        and final.parent_account_key <> final.account_key

    left join final as level_2
        on level_1.parent_account_key = level_2.account_key

    left join final as level_3
        on level_2.parent_account_key = level_3.account_key

    left join final as level_4
        on level_3.parent_account_key = level_4.account_key

    left join final as level_5
        on level_4.parent_account_key = level_5.account_key

)

select * from hierarchy
