{#- Stripe customers in the conformed erp_customers shape. Deleted customers are dropped in
    staging; test-mode customers are left out unless var q2c_stripe_include_test_mode. -#}
with

customers as (

    select * from {{ ref('stg_stripe__customers') }}

),

final as (

    select
        customer_id,
        cast(null as {{ dbt.type_string() }}) as parent_customer_id,
        coalesce(customer_name, email, customer_id) as display_name,
        customer_name as company_name,
        cast(null as {{ dbt.type_string() }}) as contact_name,
        email,
        cast(null as {{ dbt.type_string() }}) as website,
        tax_id,
        currency_code,
        cast(null as {{ dbt.type_string() }}) as preferred_delivery_method,
        case
            when address_line_2 is null then address_line_1
            when address_line_1 is null then address_line_2
            else address_line_1 || ', ' || address_line_2
        end as billing_street,
        address_city as billing_city,
        address_postal_code as billing_postal_code,
        address_state as billing_region,
        address_country as billing_country,
        cast(null as integer) as payment_term_days,
        balance_amount,
        true as is_active,
        created_at,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at

    from customers

    {%- if not var('q2c_stripe_include_test_mode', false) %}

    where coalesce(is_livemode, true)
    {%- endif %}

)

select * from final
