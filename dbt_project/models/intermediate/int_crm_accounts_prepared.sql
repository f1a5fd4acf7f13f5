{#- CRM accounts with what matching and dim_accounts need: the billing contact, a clean
    country code, a normalized name, tax id and web domain. -#}
with

accounts as (

    select * from {{ ref('int_crm_accounts') }}

),

contacts as (

    select * from {{ ref('int_crm_contacts') }}

),

country_aliases as (

    select * from {{ ref('country_aliases') }}

),

{#- A contact flagged as billing contact wins; without one, the oldest contact that has an
    e-mail address stands in. -#}
ranked_contacts as (

    select
        source_system,
        account_id,
        contact_name,
        email,
        has_opted_out_of_email,
        row_number() over (
            partition by source_system, account_id
            order by
                coalesce(is_billing_contact, false) desc,
                created_at asc nulls last,
                contact_id asc
        ) as contact_rank

    from contacts

    where account_id is not null
        and (coalesce(is_billing_contact, false) or email is not null)

),

billing_contacts as (

    select * from ranked_contacts
    where contact_rank = 1

),

final as (

    select
        accounts.source_system as crm_source_system,
        accounts.account_id as crm_account_id,
        {{ dbt.concat(['accounts.source_system', "':'", 'accounts.account_id']) }}
            as crm_ref,
        accounts.owner_id,
        accounts.account_number,
        accounts.parent_account_id,
        accounts.account_name,
        accounts.segment,
        accounts.currency_code,
        accounts.vat_number,
        case
            when {{ q2c_regex_full_match('accounts.preferred_language', '[a-z]{2}') }}
                then accounts.preferred_language
        end as preferred_language,
        coalesce(
            {{ q2c_country_code('accounts.billing_country_code', 'code_alias') }},
            {{ q2c_country_code('accounts.billing_country', 'name_alias') }}
        ) as country_code,
        coalesce(
            accounts.billing_street,
            accounts.billing_city,
            accounts.billing_postal_code
        ) is not null as has_billing_address,
        accounts.billing_street,
        accounts.billing_city,
        accounts.billing_postal_code,
        accounts.billing_state as billing_region,
        billing_contacts.contact_name as billing_contact_name,
        billing_contacts.email as billing_email,
        not coalesce(billing_contacts.has_opted_out_of_email, false) as email_consent,
        accounts.invoice_delivery_channel,
        accounts.einvoice_format,
        accounts.peppol_participant_id,
        accounts.x12_partner,
        {{ q2c_normalize_name('accounts.account_name') }} as name_normalized,
        {{ q2c_normalize_tax_id('accounts.vat_number') }} as tax_id_normalized,
        coalesce(
            {{ q2c_web_domain('accounts.website') }},
            {{ q2c_email_domain('billing_contacts.email') }}
        ) as web_domain,
        accounts.created_at,
        accounts.updated_at

    from accounts

    left join billing_contacts
        on accounts.source_system = billing_contacts.source_system
        and accounts.account_id = billing_contacts.account_id

    left join country_aliases as code_alias
        on lower(trim(accounts.billing_country_code)) = code_alias.alias

    left join country_aliases as name_alias
        on lower(trim(accounts.billing_country)) = name_alias.alias

)

select * from final
