{#- ERP customers of every enabled ERP with a clean country code and the normalized name,
    tax id and web domain used to match them to CRM accounts. `erp_ref` is the customer id
    qualified by its system, since two ERPs may use the same ids. -#}
with

customers as (

    select * from {{ ref('int_erp_customers') }}

),

country_aliases as (

    select * from {{ ref('country_aliases') }}

),

final as (

    select
        customers.source_system as erp_source_system,
        customers.customer_id as erp_customer_id,
        {{ dbt.concat(['customers.source_system', "':'", 'customers.customer_id']) }}
            as erp_ref,
        customers.parent_customer_id,
        coalesce(customers.company_name, customers.display_name) as customer_name,
        customers.display_name,
        customers.currency_code,
        customers.email,
        customers.tax_id,
        customers.preferred_delivery_method,
        customers.contact_name,
        coalesce(
            customers.billing_street,
            customers.billing_city,
            customers.billing_postal_code
        ) is not null as has_billing_address,
        customers.billing_street,
        customers.billing_city,
        customers.billing_postal_code,
        customers.billing_region,
        {{ q2c_country_code('customers.billing_country', 'country_alias') }} as country_code,
        customers.payment_term_days,
        {{ q2c_normalize_name('customers.company_name') }} as company_name_normalized,
        {{ q2c_normalize_name('customers.display_name') }} as display_name_normalized,
        {{ q2c_normalize_tax_id('customers.tax_id') }} as tax_id_normalized,
        coalesce(
            {{ q2c_web_domain('customers.website') }},
            {{ q2c_email_domain('customers.email') }}
        ) as web_domain,
        customers.balance_amount,
        customers.created_at,
        customers.updated_at

    from customers

    left join country_aliases as country_alias
        on lower(trim(customers.billing_country)) = country_alias.alias

)

select * from final
