{#- HubSpot contacts as CRM contacts, on their primary company (associatedcompanyid).
    Billing contact: the portal's `billing_contact` property when it is set, true or false;
    without it, a contact whose job title names billing or accounts payable. -#}
with

contacts as (

    select * from {{ ref('stg_hubspot__contacts') }}

),

country_aliases as (

    select * from {{ ref('country_aliases') }}

),

final as (

    select
        contacts.contact_id,
        contacts.company_id as account_id,
        contacts.first_name,
        contacts.last_name,
        nullif(trim(concat_ws(' ', contacts.first_name, contacts.last_name)), '')
            as contact_name,
        contacts.email,
        contacts.job_title as title,
        contacts.phone,
        {{ q2c_country_code('contacts.country', 'country_alias') }} as mailing_country_code,
        case
            when contacts.is_billing_contact_flag is not null
                then contacts.is_billing_contact_flag
            when lower(coalesce(contacts.job_title, '')) like '%billing%'
                or lower(coalesce(contacts.job_title, '')) like '%accounts payable%'
                then true
            else false
        end as is_billing_contact,
        contacts.has_opted_out_of_email,
        contacts.created_at,
        contacts.updated_at

    from contacts

    left join country_aliases as country_alias
        on lower(contacts.country) = country_alias.alias

    where not contacts.is_deleted

)

select * from final
