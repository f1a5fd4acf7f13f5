{#- Customer ids are unique only within a legal entity, so q2c's id is
    '<dataareaid>:<customeraccount>' (company lower-cased). -#}
with

source as (

    select * from {{ source('dynamics365', 'custcustomerv3entity') }}

),

renamed as (

    select
        ---------- ids
        {{ dbt.concat(["lower(trim(dataareaid))", "':'", "trim(customeraccount)"]) }}
            as customer_id,
        lower(trim(dataareaid)) as company_id,
        trim(customeraccount) as customer_account,
        trim(invoiceaccount) as invoice_account,
        trim(customergroupid) as customer_group_id,
        trim(paymentterms) as payment_terms_name,

        ---------- text
        trim(partytype) as party_type,
        organizationname as organization_name,
        namealias as name_alias,
        personfirstname as person_first_name,
        personlastname as person_last_name,
        upper(trim(salescurrencycode)) as currency_code,
        trim(paymentmethod) as payment_method,
        trim(deliverymode) as delivery_mode,
        lower(trim(primarycontactemail)) as email,
        primarycontactphone as phone,
        primarycontacturl as website,
        addressstreet as address_street,
        addresscity as address_city,
        addresszipcode as address_zip_code,
        addressstate as address_state,
        upper(trim(addresscountryregionid)) as address_country_region_id,
        upper(trim(addresscountryregionisocode)) as address_country_code,
        trim(taxexemptnumber) as tax_id,
        trim(onholdstatus) as on_hold_status,

        ---------- numerics
        {{ q2c_amount('creditlimit') }} as credit_limit_amount,

        ---------- booleans
        {{ q2c_parse_bool('_fivetran_deleted') }} as is_deleted,

        ---------- timestamps
        {{ q2c_parse_timestamp('_fivetran_synced') }} as synced_at,

        ---------- lineage
        nullif(concat_ws(', ',
            case
                when nullif(trim(creditlimit), '') is not null
                    and {{ q2c_amount('creditlimit') }} is null
                    then 'creditlimit'
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
