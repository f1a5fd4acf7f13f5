{#- Dynamics customers. The invoice account (the customer billed for this one) stands as
    the parent when it is another customer; the customer is inactive when it is on hold for
    everything ('All'). Term days are known for Net terms counted in days only. -#}
with

customers as (

    select * from {{ ref('stg_dynamics365__customers') }}

),

terms as (

    select * from {{ ref('stg_dynamics365__payment_terms') }}

),

final as (

    select
        customers.customer_id,
        case
            when customers.invoice_account <> customers.customer_account
                then {{ dbt.concat(["customers.company_id", "':'",
                                    "customers.invoice_account"]) }}
        end as parent_customer_id,
        coalesce(
            customers.organization_name,
            nullif(trim(concat_ws(' ',
                customers.person_first_name, customers.person_last_name
            )), ''),
            customers.customer_account
        ) as display_name,
        case
            when customers.party_type = 'Organization' then customers.organization_name
        end as company_name,
        nullif(trim(concat_ws(' ',
            customers.person_first_name, customers.person_last_name
        )), '') as contact_name,
        customers.email,
        customers.website,
        customers.tax_id,
        customers.currency_code,
        cast(null as {{ dbt.type_string() }}) as preferred_delivery_method,
        customers.address_street as billing_street,
        customers.address_city as billing_city,
        customers.address_zip_code as billing_postal_code,
        customers.address_state as billing_region,
        coalesce(customers.address_country_code, customers.address_country_region_id)
            as billing_country,
        case
            when terms.payment_method_type = 'Net'
                and coalesce(terms.number_of_months, 0) = 0
                then terms.number_of_days
        end as payment_term_days,
        cast(null as decimal(20, 4)) as balance_amount,
        coalesce(customers.on_hold_status, 'No') <> 'All' as is_active,
        cast(null as {{ dbt.type_timestamp() }}) as created_at,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at

    from customers

    left join terms
        on customers.company_id = terms.company_id
        and customers.payment_terms_name = terms.payment_terms_name

)

select * from final
