{#- Per ERP card or gateway payment (int_erp_gateway_payments_matched), whether the gateway
    has it: missing_at_gateway when no succeeded charge matches it once var
    reconciliation_grace_days have passed since its date (a declined, uncaptured or
    mistyped charge), duplicate when an earlier ERP payment already records the same
    charge. How a recorded charge compares in amount and currency is judged once, per
    charge, in int_gateway_charges_compared. -#}
{%- set grace_days = var('reconciliation_grace_days', 1) | string | trim -%}

with

erp_payments as (

    select * from {{ ref('int_erp_gateway_payments_matched') }}

),

charges as (

    select * from {{ ref('int_gateway_charges_netted') }}

),

tolerances as (

    select * from {{ ref('int_reconciliation_tolerances') }}

),

joined as (

    select
        erp_payments.*,
        charges.gateway_amount,
        charges.payout_id,
        coalesce(tolerances.tolerance_amount, 0) as tolerance_amount,
        {{ q2c_days_between('erp_payments.payment_date', q2c_as_of_date()) }}
            >= {{ grace_days }} as is_past_grace

    from erp_payments

    left join charges
        on erp_payments.charge_id = charges.charge_id

    left join tolerances
        on erp_payments.currency = tolerances.currency

),

classified as (

    select
        *,
        case
            when charge_id is null and is_past_grace and abs(amount) > tolerance_amount
                then 'missing_at_gateway'
            when match_rank > 1 and abs(amount) > tolerance_amount
                then 'duplicate'
        end as reason_code

    from joined

),

final as (

    select
        cast('erp_gateway_payment' as {{ dbt.type_string() }}) as check_name,
        payment_key as item_id,
        cast(reason_code as {{ dbt.type_string() }}) as reason_code,
        source_system,
        account_key,
        invoice_key,
        invoice_id,
        invoice_number,
        payment_key,
        payment_id,
        charge_id as gateway_charge_id,
        payout_id,
        case when reason_code = 'duplicate' then first_payment_id end as duplicate_of_id,
        currency,
        cast(null as {{ dbt.type_string() }}) as compared_currency,
        cast(amount as decimal(20, 4)) as erp_amount,
        cast(null as decimal(20, 4)) as q2c_amount,
        cast(gateway_amount as decimal(20, 4)) as gateway_amount,
        cast(
            case when reason_code is not null then amount end as decimal(20, 4)
        ) as difference_amount,
        cast(tolerance_amount as decimal(20, 4)) as tolerance_amount,
        payment_date as event_date,
        cast(
            case
                when reason_code = 'missing_at_gateway'
                    then {{ dbt.concat([
                        "'ERP payment '", "payment_id", "' (reference '",
                        "coalesce(reference_number, '-')",
                        "') is booked as a card or gateway payment, but the gateway captured "
                        ~ "no such charge: check whether the charge was declined or never "
                        ~ "captured, and reverse the payment in the ERP if so.'",
                    ]) }}
                when reason_code = 'duplicate'
                    then {{ dbt.concat([
                        "'ERP payments '", "first_payment_id", "' and '", "payment_id",
                        "' both record Stripe charge '", "charge_id",
                        "': delete the second one in the ERP.'",
                    ]) }}
            end
            as {{ dbt.type_string() }}
        ) as what_to_check

    from classified

)

select * from final
