{#- Sage Intacct customers, keyed by CUSTOMERID (the id invoices and payments carry). -#}
with

customers as (

    select * from {{ ref('stg_sage_intacct__customers') }}

),

final as (

    select
        customer_id,
        parent_customer_id,
        customer_name as display_name,
        company_name,
        contact_name,
        email,
        website,
        tax_id,
        currency_code,
        {#- Intacct joins several options with '#~#', e.g. 'Print#~#E-Mail'; e-mail wins. -#}
        case
            when delivery_options like '%E-Mail%' then 'email'
            when delivery_options like '%Print%' then 'print'
        end as preferred_delivery_method,
        nullif(trim(concat_ws(', ', address_line_1, address_line_2)), '') as billing_street,
        city as billing_city,
        postal_code as billing_postal_code,
        region as billing_region,
        country as billing_country,
        cast(null as integer) as payment_term_days,
        balance_amount,
        status = 'active' as is_active,
        created_at,
        updated_at

    from customers

)

select * from final
