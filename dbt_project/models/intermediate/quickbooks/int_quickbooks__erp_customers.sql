{#- QuickBooks customers with their bill address and payment term days. -#}
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

final as (

    select
        customers.customer_id,
        customers.parent_customer_id,
        customers.display_name,
        customers.company_name,
        nullif(
            trim(concat_ws(' ', customers.given_name, customers.family_name)),
            ''
        ) as contact_name,
        customers.email,
        customers.website,
        customers.tax_id,
        customers.currency_code,
        customers.preferred_delivery_method,
        nullif(
            trim(concat_ws(', ', addresses.line_1, addresses.line_2)),
            ''
        ) as billing_street,
        addresses.city as billing_city,
        addresses.postal_code as billing_postal_code,
        addresses.region as billing_region,
        addresses.country as billing_country,
        terms.due_days as payment_term_days,
        customers.balance_amount,
        customers.is_active,
        customers.created_at,
        customers.updated_at

    from customers

    left join addresses
        on customers.bill_address_id = addresses.address_id

    left join terms
        on customers.sales_term_id = terms.term_id

    where not coalesce(customers.is_deleted, false)

)

select * from final
