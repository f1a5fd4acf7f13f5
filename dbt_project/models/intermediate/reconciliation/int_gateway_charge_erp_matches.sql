{#- Which ERP payment records which gateway charge: the one place q2c decides that a Stripe
    charge and an ERP payment are the same money. An ERP payment records a charge when its
    reference is the charge id, the charge's payment intent or its receipt number (compared
    without case and surrounding spaces; the charge id wins over the others, then the lower
    charge id). Payments Stripe itself keeps (source_system 'stripe') are the gateway's
    side and record nothing. match_rank numbers the ERP payments of one charge by date,
    then id: a second one records the charge twice.

    Both sides read this model, so they cannot disagree: q2c's allocation leaves a recorded
    charge to the ERP payment that records it (int_cash_payments_unapplied), and the
    reconciliation compares the two (int_erp_gateway_payments_matched,
    int_gateway_charges_compared). With Stripe off there are no charges and no rows. -#}
with

payments as (

    select * from {{ ref('fct_payments') }}

),

charges as (

    select * from {{ ref('int_gateway_charges_netted') }}

),

erp_payments as (

    select
        payment_key,
        source_system,
        payment_id,
        account_key,
        currency,
        amount,
        payment_date,
        reference_number,
        upper(trim(reference_number)) as reference_key

    from payments

    where source_system <> 'stripe'
        and reference_number is not null

),

{#- reference_number of a charge is its receipt number, else its payment intent. -#}
charge_references as (

    select
        upper(charge_id) as reference_key,
        charge_id,
        payment_key as charge_payment_key,
        'charge_id' as matched_on,
        1 as match_order

    from charges

    union all

    select
        upper(payment_intent_id) as reference_key,
        charge_id,
        payment_key as charge_payment_key,
        'payment_intent' as matched_on,
        2 as match_order

    from charges

    where payment_intent_id is not null

    union all

    select
        upper(reference_number) as reference_key,
        charge_id,
        payment_key as charge_payment_key,
        'receipt_number' as matched_on,
        3 as match_order

    from charges

    where reference_number is not null

),

ranked_matches as (

    select
        erp_payments.*,
        charge_references.charge_id,
        charge_references.charge_payment_key,
        charge_references.matched_on,
        row_number() over (
            partition by erp_payments.payment_key
            order by charge_references.match_order, charge_references.charge_id
        ) as match_preference

    from erp_payments

    inner join charge_references
        on erp_payments.reference_key = charge_references.reference_key

),

best_matches as (

    select * from ranked_matches
    where match_preference = 1

),

final as (

    select
        payment_key,
        source_system,
        payment_id,
        account_key,
        currency,
        amount,
        payment_date,
        reference_number,
        charge_id,
        charge_payment_key,
        cast(matched_on as {{ dbt.type_string() }}) as matched_on,
        cast(
            row_number() over (
                partition by charge_id
                order by payment_date, payment_id
            ) as integer
        ) as match_rank,
        first_value(payment_id) over (
            partition by charge_id
            order by payment_date, payment_id
            rows between unbounded preceding and unbounded following
        ) as first_payment_id

    from best_matches

)

select * from final
