with

source as (

    select * from {{ source('sage_intacct', 'customer') }}

),

renamed as (

    select
        ---------- ids
        trim(recordno) as customer_record_number,
        trim(customerid) as customer_id,
        trim(parentid) as parent_customer_id,

        ---------- text
        name as customer_name,
        lower(trim(status)) as status,
        upper(trim(currency)) as currency_code,
        trim(termname) as term_name,
        trim(taxid) as tax_id,
        trim(delivery_options) as delivery_options,
        displaycontact_companyname as company_name,
        displaycontact_contactname as contact_name,
        lower(trim(displaycontact_email1)) as email,
        displaycontact_url1 as website,
        displaycontact_mailaddress_address1 as address_line_1,
        displaycontact_mailaddress_address2 as address_line_2,
        displaycontact_mailaddress_city as city,
        displaycontact_mailaddress_state as region,
        displaycontact_mailaddress_zip as postal_code,
        displaycontact_mailaddress_country as country,

        ---------- numerics
        {{ q2c_amount('totaldue') }} as balance_amount,

        ---------- dates and timestamps
        {{ q2c_parse_timestamp('whencreated') }} as created_at,
        {{ q2c_parse_timestamp('whenmodified') }} as updated_at,

        ---------- sync
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(totaldue), '') is not null
                    and {{ q2c_amount('totaldue') }} is null
                    then 'totaldue'
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
