{#- Every exchange rate q2c knows, one row per rate seen: the treasury's reference rates and
    the rates ERPs recorded on invoices, credit notes and payments, taken only from ERPs
    whose home currency (var erp_home_currencies) is the reporting currency, since an ERP's
    rate converts to its own home currency. -#}
with

reference_rates as (

    select
        currency,
        rate_date,
        rate,
        'reference' as rate_source,
        cast(null as {{ dbt.type_string() }}) as source_system,
        cast(null as {{ dbt.type_string() }}) as source_id,
        cast(null as {{ dbt.type_timestamp() }}) as recorded_at

    from {{ ref('fx_reference_rates') }}

    where reporting_currency = '{{ var("reporting_currency") }}'

),

{%- set rate_sources = q2c_rate_sources() %}
{%- set documents = [
    ('int_erp_invoices_all', 'invoice_id', 'issue_date'),
    ('int_erp_credit_notes', 'credit_note_id', 'issue_date'),
    ('int_erp_payments', 'payment_id', 'payment_date'),
] %}

document_rates as (

    {%- if rate_sources %}
    {%- for model, id_column, date_column in documents %}
    select
        currency_code as currency,
        {{ date_column }} as rate_date,
        exchange_rate as rate,
        'erp_document' as rate_source,
        source_system,
        {{ id_column }} as source_id,
        updated_at as recorded_at

    from {{ ref(model) }}

    where exchange_rate is not null
        and exchange_rate > 0
        and currency_code is not null
        and {{ date_column }} is not null
        and currency_code <> '{{ var("reporting_currency") }}'
        and source_system in ('{{ rate_sources | join("', '") }}')
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
    {%- else %}
    select * from reference_rates where 1 = 0
    {%- endif %}

)

select * from reference_rates
union all
select * from document_rates
