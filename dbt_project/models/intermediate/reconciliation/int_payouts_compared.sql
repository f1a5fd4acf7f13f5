{#- Per gateway payout that left for the bank (paid or in transit), the amount paid out
    against the net of the balance transactions it settled (fct_payouts): a difference
    above the tolerance is an amount_mismatch, usually transactions missing from the landed
    data or a payout the gateway adjusted. Pending payouts may still gain transactions and
    failed or canceled ones paid nothing, so they are not compared. Empty with Stripe off. -#}
{%- if var('q2c_stripe_enabled', false) %}

with

payouts as (

    select * from {{ ref('fct_payouts') }}

),

tolerances as (

    select * from {{ ref('int_reconciliation_tolerances') }}

),

compared as (

    select
        payouts.*,
        coalesce(tolerances.tolerance_amount, 0) as tolerance_amount

    from payouts

    left join tolerances
        on payouts.currency = tolerances.currency

    where payouts.status in ('paid', 'in_transit')

),

final as (

    select
        cast('payout' as {{ dbt.type_string() }}) as check_name,
        payout_id as item_id,
        cast(
            case
                when abs(difference_amount) > tolerance_amount then 'amount_mismatch'
            end
            as {{ dbt.type_string() }}
        ) as reason_code,
        source_system,
        cast(null as {{ dbt.type_string() }}) as account_key,
        cast(null as {{ dbt.type_string() }}) as invoice_key,
        cast(null as {{ dbt.type_string() }}) as invoice_id,
        cast(null as {{ dbt.type_string() }}) as invoice_number,
        cast(null as {{ dbt.type_string() }}) as payment_key,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        cast(null as {{ dbt.type_string() }}) as gateway_charge_id,
        payout_id,
        cast(null as {{ dbt.type_string() }}) as duplicate_of_id,
        currency,
        cast(null as {{ dbt.type_string() }}) as compared_currency,
        cast(null as decimal(20, 4)) as erp_amount,
        cast(transactions_net_amount as decimal(20, 4)) as q2c_amount,
        cast(amount as decimal(20, 4)) as gateway_amount,
        cast(difference_amount as decimal(20, 4)) as difference_amount,
        cast(tolerance_amount as decimal(20, 4)) as tolerance_amount,
        arrival_date as event_date,
        cast(
            {{ dbt.concat([
                "'Payout '", "payout_id",
                "' does not equal the net of the balance transactions it settled: check "
                ~ "that every transaction of the payout is landed (Stripe payout "
                ~ "reconciliation report) and whether the payout was adjusted.'",
            ]) }}
            as {{ dbt.type_string() }}
        ) as what_to_check

    from compared

)

select * from final

{%- else %}

select
    cast(null as {{ dbt.type_string() }}) as check_name,
    cast(null as {{ dbt.type_string() }}) as item_id,
    cast(null as {{ dbt.type_string() }}) as reason_code,
    cast(null as {{ dbt.type_string() }}) as source_system,
    cast(null as {{ dbt.type_string() }}) as account_key,
    cast(null as {{ dbt.type_string() }}) as invoice_key,
    cast(null as {{ dbt.type_string() }}) as invoice_id,
    cast(null as {{ dbt.type_string() }}) as invoice_number,
    cast(null as {{ dbt.type_string() }}) as payment_key,
    cast(null as {{ dbt.type_string() }}) as payment_id,
    cast(null as {{ dbt.type_string() }}) as gateway_charge_id,
    cast(null as {{ dbt.type_string() }}) as payout_id,
    cast(null as {{ dbt.type_string() }}) as duplicate_of_id,
    cast(null as {{ dbt.type_string() }}) as currency,
    cast(null as {{ dbt.type_string() }}) as compared_currency,
    cast(null as decimal(20, 4)) as erp_amount,
    cast(null as decimal(20, 4)) as q2c_amount,
    cast(null as decimal(20, 4)) as gateway_amount,
    cast(null as decimal(20, 4)) as difference_amount,
    cast(null as decimal(20, 4)) as tolerance_amount,
    cast(null as date) as event_date,
    cast(null as {{ dbt.type_string() }}) as what_to_check

where 1 = 0

{%- endif %}
