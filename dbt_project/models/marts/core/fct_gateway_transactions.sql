{{ config(enabled=var('q2c_stripe_enabled', false)) }}
{#- One row per Stripe balance transaction: every movement of the Stripe balance (charge,
    refund, fee, payout, adjustment such as a dispute), with what it was for and the payout
    that settled it. A balance transaction names its object in `source`; where that id is
    not landed, the charge (for a charge movement), refund (refund movement) or dispute
    (adjustment) that names the balance transaction is used instead. Test-mode movements
    (known from their charge or payout) are left out unless var
    q2c_stripe_include_test_mode. -#}
with

balance_transactions as (

    select * from {{ ref('stg_stripe__balance_transactions') }}

),

charges as (

    select * from {{ ref('stg_stripe__charges') }}

),

refunds as (

    select * from {{ ref('stg_stripe__refunds') }}

),

disputes as (

    select * from {{ ref('stg_stripe__disputes') }}

),

payouts as (

    select * from {{ ref('stg_stripe__payouts') }}

),

invoices as (

    select * from {{ ref('stg_stripe__invoices') }}

),

charges_by_transaction as (

    select
        balance_transaction_id,
        min(charge_id) as charge_id

    from charges

    where balance_transaction_id is not null

    group by balance_transaction_id

),

refunds_by_transaction as (

    select
        balance_transaction_id,
        min(refund_id) as refund_id

    from refunds

    where balance_transaction_id is not null

    group by balance_transaction_id

),

disputes_by_transaction as (

    select
        balance_transaction_id,
        min(dispute_id) as dispute_id

    from disputes

    where balance_transaction_id is not null

    group by balance_transaction_id

),

linked as (

    select
        balance_transactions.*,
        coalesce(
            charge_sources.charge_id, charges_by_transaction.charge_id
        ) as direct_charge_id,
        coalesce(
            refund_sources.refund_id, refunds_by_transaction.refund_id
        ) as refund_id,
        coalesce(
            dispute_sources.dispute_id, disputes_by_transaction.dispute_id
        ) as dispute_id,
        payout_sources.payout_id as own_payout_id,
        payout_sources.is_livemode as payout_is_livemode

    from balance_transactions

    left join charges as charge_sources
        on balance_transactions.source_object_id = charge_sources.charge_id

    left join refunds as refund_sources
        on balance_transactions.source_object_id = refund_sources.refund_id

    left join disputes as dispute_sources
        on balance_transactions.source_object_id = dispute_sources.dispute_id

    left join payouts as payout_sources
        on balance_transactions.source_object_id = payout_sources.payout_id

    left join charges_by_transaction
        on balance_transactions.balance_transaction_id
            = charges_by_transaction.balance_transaction_id
        and balance_transactions.transaction_category = 'charge'

    left join refunds_by_transaction
        on balance_transactions.balance_transaction_id
            = refunds_by_transaction.balance_transaction_id
        and balance_transactions.transaction_category = 'refund'

    left join disputes_by_transaction
        on balance_transactions.balance_transaction_id
            = disputes_by_transaction.balance_transaction_id
        and balance_transactions.transaction_category = 'adjustment'

),

described as (

    select
        linked.*,
        coalesce(
            linked.direct_charge_id, refunds.charge_id, disputes.charge_id
        ) as charge_id,
        case
            when linked.direct_charge_id is not null then 'charge'
            when linked.refund_id is not null then 'refund'
            when linked.dispute_id is not null then 'dispute'
            when linked.own_payout_id is not null then 'payout'
        end as source_object_type,
        case
            when linked.direct_charge_id is not null then direct_charges.currency_code
            when linked.refund_id is not null then refunds.currency_code
            when linked.dispute_id is not null then disputes.currency_code
        end as source_currency,
        case
            when linked.direct_charge_id is not null then direct_charges.amount
            when linked.refund_id is not null then -refunds.amount
            when linked.dispute_id is not null then -disputes.amount
        end as source_amount

    from linked

    left join charges as direct_charges
        on linked.direct_charge_id = direct_charges.charge_id

    left join refunds
        on linked.refund_id = refunds.refund_id

    left join disputes
        on linked.dispute_id = disputes.dispute_id

),

final as (

    select
        {{ q2c_surrogate_key(["'stripe'", 'described.balance_transaction_id']) }}
            as gateway_transaction_key,
        'stripe' as source_system,
        described.balance_transaction_id as source_id,
        described.transaction_type,
        described.transaction_category,
        described.reporting_category,
        described.source_object_id,
        described.source_object_type,
        described.charge_id,
        described.refund_id,
        described.dispute_id,
        charges.customer_id,
        charges.invoice_id,
        invoices.invoice_number,
        coalesce(
            described.payout_id,
            case when described.transaction_category = 'payout'
                then described.own_payout_id end
        ) as payout_id,
        described.currency_code as currency,
        described.amount as gross_amount,
        described.fee_amount,
        described.net_amount,
        described.source_currency,
        cast(described.source_amount as decimal(20, 4)) as source_amount,
        described.exchange_rate,
        described.status,
        described.description,
        coalesce(charges.is_livemode, described.payout_is_livemode) as is_livemode,
        described.created_at,
        cast(described.available_on_at as date) as available_on_date

    from described

    left join charges
        on described.charge_id = charges.charge_id

    left join invoices
        on charges.invoice_id = invoices.invoice_id

    {%- if not var('q2c_stripe_include_test_mode', false) %}

    where coalesce(charges.is_livemode, described.payout_is_livemode, true)
    {%- endif %}

)

select * from final
