{#- The portal disputes copied from the operational store, amounts turned from minor units
    into decimals of their currency. Until q2c has exported them (a warehouse without a
    portal) the model is empty rather than failing. -#}
{%- set declared = source('q2c_portal', 'portal_disputes') -%}
{%- set found = load_relation(declared) if execute else none -%}
with

disputes as (

{%- if found is not none %}

    select * from {{ declared }}

{%- else %}

    select
        cast(null as {{ dbt.type_string() }}) as dispute_id,
        cast(null as bigint) as dispute_number,
        cast(null as {{ dbt.type_string() }}) as account_key,
        cast(null as {{ dbt.type_string() }}) as invoice_id,
        cast(null as {{ dbt.type_string() }}) as invoice_key,
        cast(null as {{ dbt.type_string() }}) as invoice_number,
        cast(null as {{ dbt.type_string() }}) as currency,
        cast(null as bigint) as invoice_total_minor,
        cast(null as {{ dbt.type_int() }}) as line_number,
        cast(null as bigint) as line_amount_minor,
        cast(null as {{ dbt.type_string() }}) as reason_code,
        cast(null as {{ dbt.type_int() }}) as reasons_version,
        cast(null as boolean) as has_comment,
        cast(null as boolean) as has_attachment,
        cast(null as {{ dbt.type_string() }}) as status,
        cast(null as {{ dbt.type_string() }}) as resolution,
        cast(null as bigint) as credit_amount_minor,
        cast(null as {{ dbt.type_string() }}) as language,
        cast(null as {{ dbt.type_timestamp() }}) as opened_at,
        cast(null as {{ dbt.type_string() }}) as opened_by,
        cast(null as {{ dbt.type_timestamp() }}) as reviewed_at,
        cast(null as {{ dbt.type_string() }}) as reviewed_by,
        cast(null as {{ dbt.type_timestamp() }}) as resolved_at,
        cast(null as {{ dbt.type_string() }}) as resolved_by,
        cast(null as {{ dbt.type_int() }}) as staff_step_count

    where 1 = 0

{%- endif %}

),

currencies as (

    select * from {{ ref('iso_currencies') }}

),

final as (

    select
        cast(disputes.dispute_id as {{ dbt.type_string() }}) as dispute_id,
        cast(disputes.dispute_number as bigint) as dispute_number,
        cast(disputes.account_key as {{ dbt.type_string() }}) as account_key,
        cast(disputes.invoice_id as {{ dbt.type_string() }}) as invoice_id,
        cast(disputes.invoice_key as {{ dbt.type_string() }}) as invoice_key,
        cast(disputes.invoice_number as {{ dbt.type_string() }}) as invoice_number,
        cast(disputes.currency as {{ dbt.type_string() }}) as currency,
        cast(disputes.line_number as {{ dbt.type_int() }}) as line_number,
        cast(disputes.reason_code as {{ dbt.type_string() }}) as reason_code,
        cast(disputes.reasons_version as {{ dbt.type_int() }}) as reasons_version,
        coalesce(cast(disputes.has_comment as boolean), false) as has_comment,
        coalesce(cast(disputes.has_attachment as boolean), false) as has_attachment,
        cast(disputes.status as {{ dbt.type_string() }}) as status,
        cast(disputes.resolution as {{ dbt.type_string() }}) as resolution,
        cast(disputes.language as {{ dbt.type_string() }}) as language,
        cast(disputes.opened_at as {{ dbt.type_timestamp() }}) as opened_at,
        cast(disputes.opened_by as {{ dbt.type_string() }}) as opened_by,
        cast(disputes.reviewed_at as {{ dbt.type_timestamp() }}) as reviewed_at,
        cast(disputes.reviewed_by as {{ dbt.type_string() }}) as reviewed_by,
        cast(disputes.resolved_at as {{ dbt.type_timestamp() }}) as resolved_at,
        cast(disputes.resolved_by as {{ dbt.type_string() }}) as resolved_by,
        cast(disputes.staff_step_count as {{ dbt.type_int() }}) as staff_step_count,
        {{ q2c_minor_to_amount('disputes.invoice_total_minor', 'currencies.minor_units') }}
            as invoice_total_amount,
        {{ q2c_minor_to_amount('disputes.line_amount_minor', 'currencies.minor_units') }}
            as line_amount,
        {{ q2c_minor_to_amount('disputes.credit_amount_minor', 'currencies.minor_units') }}
            as credit_amount

    from disputes

    left join currencies
        on disputes.currency = currencies.currency_code

)

select * from final
