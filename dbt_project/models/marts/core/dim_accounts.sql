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

joined as (

    select
        crosswalk.account_key,
        crosswalk.crm_account_id,
        crosswalk.erp_customer_id,
        crosswalk.match_method,
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
        on crosswalk.crm_account_id = crm_accounts.crm_account_id

    left join erp_customers
        on crosswalk.erp_customer_id = erp_customers.erp_customer_id

    left join crosswalk as crm_parent
        on crm_accounts.parent_account_id = crm_parent.crm_account_id

    left join crosswalk as erp_parent
        on erp_customers.parent_customer_id = erp_parent.erp_customer_id

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
        crm_account_id,
        erp_customer_id,
        match_method,
        account_name,
        parent_account_key,
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
            when crm_account_id is not null and erp_customer_id is not null
                then 'salesforce,quickbooks'
            when crm_account_id is not null then 'salesforce'
            else 'quickbooks'
        end as source_systems

    from localized

)

select * from final
