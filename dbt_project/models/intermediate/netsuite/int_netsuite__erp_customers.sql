{#- NetSuite customers with their default billing address, term and ISO currency. -#}
with

customers as (

    select * from {{ ref('stg_netsuite__customers') }}

),

addresses as (

    select * from {{ ref('stg_netsuite__entity_addresses') }}

),

terms as (

    select * from {{ ref('stg_netsuite__terms') }}

),

currencies as (

    select * from {{ ref('stg_netsuite__currencies') }}

),

final as (

    select
        customers.customer_id,
        customers.parent_customer_id,
        coalesce(
            customers.company_name,
            customers.alt_name,
            nullif(trim(concat_ws(' ', customers.first_name, customers.last_name)), ''),
            customers.entity_number
        ) as display_name,
        customers.company_name,
        nullif(trim(concat_ws(' ', customers.first_name, customers.last_name)), '')
            as contact_name,
        customers.email,
        customers.website,
        customers.tax_id,
        currencies.currency_code,
        case
            when customers.is_emailed_transactions then 'email'
            when customers.is_printed_transactions then 'print'
        end as preferred_delivery_method,
        nullif(trim(concat_ws(', ',
            addresses.address_line_1, addresses.address_line_2, addresses.address_line_3
        )), '') as billing_street,
        addresses.city as billing_city,
        addresses.postal_code as billing_postal_code,
        addresses.region as billing_region,
        addresses.country as billing_country,
        terms.due_days as payment_term_days,
        customers.balance_amount,
        not coalesce(customers.is_inactive, false) as is_active,
        customers.created_at,
        customers.updated_at

    from customers

    left join addresses
        on customers.billing_address_key = addresses.address_key

    left join terms
        on customers.term_id = terms.term_id

    left join currencies
        on customers.currency_id = currencies.currency_id

)

select * from final
