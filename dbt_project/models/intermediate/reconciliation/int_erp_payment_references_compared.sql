{#- ERP payments entered twice: per ERP payment that carries a reference (a check number, a
    bank reference) and records no gateway charge, whether an earlier payment of the same
    system and customer has the same reference, currency and amount within var
    reconciliation_duplicate_window_days days before it. Two equal payments further apart
    are taken as a recurring payment, not a duplicate. Payments that record a gateway
    charge are compared per charge in int_erp_gateway_payments_compared instead. -#}
{%- set window_days = var('reconciliation_duplicate_window_days', 7) | string | trim -%}
{%- if not modules.re.match('^[0-9]{1,4}$', window_days) -%}
    {{ exceptions.raise_compiler_error(
        "var reconciliation_duplicate_window_days must be a whole number of days, 0 or "
        ~ "more; got '" ~ window_days ~ "'"
    ) }}
{%- endif -%}

with

payments as (

    select * from {{ ref('fct_payments') }}

),

charge_matches as (

    select * from {{ ref('int_gateway_charge_erp_matches') }}

),

tolerances as (

    select * from {{ ref('int_reconciliation_tolerances') }}

),

referenced as (

    select
        payments.payment_key,
        payments.source_system,
        payments.payment_id,
        payments.account_key,
        payments.erp_customer_id,
        payments.currency,
        payments.amount,
        payments.payment_date,
        payments.reference_number,
        upper(trim(payments.reference_number)) as reference_key

    from payments

    where payments.source_system <> 'stripe'
        and trim(coalesce(payments.reference_number, '')) <> ''
        and not exists (
            select 1 from charge_matches
            where charge_matches.payment_key = payments.payment_key
        )

),

{#- The earliest payment each one repeats: same system, customer, reference, currency and
    amount, dated at most the window before it (same day: the lower id is the first). -#}
repeats as (

    select
        later.payment_key,
        min(earlier.payment_id) as duplicate_of_id

    from referenced as later

    inner join referenced as earlier
        on later.source_system = earlier.source_system
        and later.erp_customer_id = earlier.erp_customer_id
        and later.reference_key = earlier.reference_key
        and later.currency = earlier.currency
        and later.amount = earlier.amount
        and later.payment_key <> earlier.payment_key
        and (
            earlier.payment_date < later.payment_date
            or (
                earlier.payment_date = later.payment_date
                and earlier.payment_id < later.payment_id
            )
        )
        and {{ q2c_days_between('earlier.payment_date', 'later.payment_date') }}
            <= {{ window_days }}

    group by later.payment_key

),

classified as (

    select
        referenced.*,
        repeats.duplicate_of_id,
        coalesce(tolerances.tolerance_amount, 0) as tolerance_amount,
        case
            when repeats.duplicate_of_id is not null
                and abs(referenced.amount) > coalesce(tolerances.tolerance_amount, 0)
                then 'duplicate'
        end as reason_code

    from referenced

    left join repeats
        on referenced.payment_key = repeats.payment_key

    left join tolerances
        on referenced.currency = tolerances.currency

),

final as (

    select
        cast('erp_payment_reference' as {{ dbt.type_string() }}) as check_name,
        payment_key as item_id,
        cast(reason_code as {{ dbt.type_string() }}) as reason_code,
        source_system,
        account_key,
        cast(null as {{ dbt.type_string() }}) as invoice_key,
        cast(null as {{ dbt.type_string() }}) as invoice_id,
        cast(null as {{ dbt.type_string() }}) as invoice_number,
        payment_key,
        payment_id,
        cast(null as {{ dbt.type_string() }}) as gateway_charge_id,
        cast(null as {{ dbt.type_string() }}) as payout_id,
        case when reason_code = 'duplicate' then duplicate_of_id end as duplicate_of_id,
        currency,
        cast(null as {{ dbt.type_string() }}) as compared_currency,
        cast(amount as decimal(20, 4)) as erp_amount,
        cast(null as decimal(20, 4)) as q2c_amount,
        cast(null as decimal(20, 4)) as gateway_amount,
        cast(
            case when reason_code is not null then amount end as decimal(20, 4)
        ) as difference_amount,
        cast(tolerance_amount as decimal(20, 4)) as tolerance_amount,
        payment_date as event_date,
        cast(
            case
                when reason_code = 'duplicate'
                    then {{ dbt.concat([
                        "'ERP payment '", "payment_id",
                        "' repeats payment '", "duplicate_of_id",
                        "' (same customer, reference '", "reference_number",
                        "', currency and amount): delete it in the ERP if the customer paid "
                        ~ "once.'",
                    ]) }}
            end
            as {{ dbt.type_string() }}
        ) as what_to_check

    from classified

)

select * from final
