{{ config(enabled=var('q2c_stripe_enabled', false)) }}
{#- One row per Stripe payout with the balance transactions it settled, so a payout that
    does not add up shows. The payout's own balance transactions (its withdrawal and, if
    it failed, the return) are not part of what it settles. Stripe pays each currency out
    separately, so a payout and its transactions share one currency. Test-mode payouts are
    left out unless var q2c_stripe_include_test_mode. -#}
with

payouts as (

    select * from {{ ref('stg_stripe__payouts') }}

),

gateway_transactions as (

    select * from {{ ref('fct_gateway_transactions') }}

),

settled as (

    select
        payouts.payout_id,
        count(gateway_transactions.source_id) as transaction_count,
        sum(gateway_transactions.gross_amount) as transactions_gross_amount,
        sum(gateway_transactions.fee_amount) as transactions_fee_amount,
        sum(gateway_transactions.net_amount) as transactions_net_amount

    from payouts

    inner join gateway_transactions
        on payouts.payout_id = gateway_transactions.payout_id
        and coalesce(gateway_transactions.source_object_id, '') <> payouts.payout_id
        and gateway_transactions.source_id
            <> coalesce(payouts.balance_transaction_id, '')

    group by payouts.payout_id

),

final as (

    select
        {{ q2c_surrogate_key(["'stripe'", 'payouts.payout_id']) }} as payout_key,
        'stripe' as source_system,
        payouts.payout_id as source_id,
        payouts.payout_id,
        payouts.balance_transaction_id,
        payouts.currency_code as currency,
        payouts.amount,
        payouts.arrival_date,
        payouts.status,
        payouts.payout_type,
        payouts.payout_method,
        payouts.is_automatic,
        payouts.failure_code,
        payouts.created_at,
        coalesce(settled.transaction_count, 0) as transaction_count,
        cast(coalesce(settled.transactions_gross_amount, 0) as decimal(20, 4))
            as transactions_gross_amount,
        cast(coalesce(settled.transactions_fee_amount, 0) as decimal(20, 4))
            as transactions_fee_amount,
        cast(coalesce(settled.transactions_net_amount, 0) as decimal(20, 4))
            as transactions_net_amount,
        cast(
            payouts.amount - coalesce(settled.transactions_net_amount, 0)
            as decimal(20, 4)
        ) as difference_amount

    from payouts

    left join settled
        on payouts.payout_id = settled.payout_id

    {%- if not var('q2c_stripe_include_test_mode', false) %}

    where coalesce(payouts.is_livemode, true)
    {%- endif %}

)

select * from final
