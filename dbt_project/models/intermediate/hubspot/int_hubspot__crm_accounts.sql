{#- HubSpot companies as CRM accounts. HubSpot keeps no currency on a company (deals carry
    their own) and no external id field, so both are null; the country name is turned into
    its ISO code through the country_aliases seed. -#}
with

companies as (

    select * from {{ ref('stg_hubspot__companies') }}

),

country_aliases as (

    select * from {{ ref('country_aliases') }}

),

final as (

    select
        companies.company_id as account_id,
        cast(null as {{ dbt.type_string() }}) as account_number,
        companies.parent_company_id as parent_account_id,
        companies.owner_id,
        companies.company_name as account_name,
        companies.company_type as account_type,
        companies.industry,
        coalesce(companies.website, companies.domain) as website,
        companies.phone,
        companies.vat_number,
        companies.preferred_language,
        companies.segment,
        companies.invoice_delivery_channel,
        companies.einvoice_format,
        companies.peppol_participant_id,
        companies.x12_partner,
        nullif(
            concat_ws(', ', companies.street_address, companies.street_address_2), ''
        ) as billing_street,
        companies.city as billing_city,
        companies.postal_code as billing_postal_code,
        companies.state as billing_state,
        companies.country as billing_country,
        {{ q2c_country_code('companies.country', 'country_alias') }} as billing_country_code,
        cast(null as {{ dbt.type_string() }}) as currency_code,
        companies.created_at,
        companies.updated_at

    from companies

    left join country_aliases as country_alias
        on lower(companies.country) = country_alias.alias

    where not companies.is_deleted

)

select * from final
