{#- ERP customers with their bill address, payment term and the normalized name, tax id
    and web domain used to match them to CRM accounts. -#}
with

customers as (

    select * from {{ ref('stg_quickbooks__customers') }}

),

addresses as (

    select * from {{ ref('stg_quickbooks__addresses') }}

),

terms as (

    select * from {{ ref('stg_quickbooks__terms') }}

),

country_aliases as (

    select * from {{ ref('country_aliases') }}

),

final as (

    select
        customers.customer_id as erp_customer_id,
        customers.parent_customer_id,
        coalesce(customers.company_name, customers.display_name) as customer_name,
        customers.display_name,
        customers.currency_code,
        customers.email,
        customers.tax_id,
        customers.preferred_delivery_method,
        nullif(
            trim(concat_ws(' ', customers.given_name, customers.family_name)),
            ''
        ) as contact_name,
        addresses.address_id is not null as has_billing_address,
        nullif(
            trim(concat_ws(', ', addresses.line_1, addresses.line_2)),
            ''
        ) as billing_street,
        addresses.city as billing_city,
        addresses.postal_code as billing_postal_code,
        addresses.region as billing_region,
        {{ q2c_country_code('addresses.country', 'country_alias') }} as country_code,
        terms.due_days as payment_term_days,
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

    left join addresses
        on customers.bill_address_id = addresses.address_id

    left join terms
        on customers.sales_term_id = terms.term_id

    left join country_aliases as country_alias
        on lower(addresses.country) = country_alias.alias

)

select * from final
