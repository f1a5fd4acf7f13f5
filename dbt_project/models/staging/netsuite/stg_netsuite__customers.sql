with

source as (

    select * from {{ source('netsuite', 'customer') }}

),

renamed as (

    select
        ---------- ids
        trim(id) as customer_id,
        trim(entityid) as entity_number,
        trim(externalid) as external_id,
        trim(parent) as parent_customer_id,
        trim(currency) as currency_id,
        trim(terms) as term_id,
        trim(defaultbillingaddress) as billing_address_key,

        ---------- text
        companyname as company_name,
        altname as alt_name,
        firstname as first_name,
        lastname as last_name,
        lower(trim(email)) as email,
        phone,
        url as website,
        trim(vatregnumber) as tax_id,

        ---------- numerics
        {{ q2c_amount('balancesearch') }} as balance_amount,

        ---------- booleans
        {{ q2c_parse_bool('isperson') }} as is_person,
        {{ q2c_parse_bool('emailtransactions') }} as is_emailed_transactions,
        {{ q2c_parse_bool('printtransactions') }} as is_printed_transactions,
        {{ q2c_parse_bool('isinactive') }} as is_inactive,
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('datecreated') }} as created_at,
        {{ q2c_parse_timestamp('lastmodifieddate') }} as updated_at,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(balancesearch), '') is not null
                    and {{ q2c_amount('balancesearch') }} is null
                    then 'balancesearch'
            end
        ), '') as unparsed_fields,
        _q2c_source_file,
        _q2c_source_row

    from source

),

final as (

    select * from renamed
    where not coalesce(is_deleted, false)

)

select * from final
