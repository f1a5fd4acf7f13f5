{#- Every Stripe charge that moved money: status succeeded and captured (an uncaptured
    charge is only an authorization). Test-mode charges are left out unless var
    q2c_stripe_include_test_mode. Each charge carries what the payment and allocation
    adapters need: its invoice, the invoice number it pays, its channel and its fee.

    Channel: 'portal' when the charge or its payment intent has metadata key q2c_channel
    = 'portal', or a description starting 'q2c portal' (what q2c's portal checkout sets);
    every other charge is 'card'. The invoice number is the Stripe invoice's number, else
    metadata key q2c_invoice_number on the charge or its payment intent (the ERP invoice a
    portal payment settles). The fee is the balance transaction's fee when that is in the
    charge's currency; a charge settled in another currency keeps its fee only in
    fct_gateway_transactions, since converting it back would need a division whose result
    is no exact decimal. -#}
with

charges as (

    select * from {{ ref('stg_stripe__charges') }}

),

payment_intents as (

    select * from {{ ref('stg_stripe__payment_intents') }}

),

balance_transactions as (

    select * from {{ ref('stg_stripe__balance_transactions') }}

),

invoices as (

    select * from {{ ref('stg_stripe__invoices') }}

),

final as (

    select
        charges.charge_id,
        charges.customer_id,
        charges.payment_intent_id,
        charges.balance_transaction_id,
        charges.invoice_id,
        coalesce(
            invoices.invoice_number,
            charges.q2c_invoice_number,
            payment_intents.q2c_invoice_number
        ) as invoice_number,
        case
            when coalesce(charges.q2c_channel, payment_intents.q2c_channel) = 'portal'
                then 'portal'
            when lower(coalesce(charges.description, payment_intents.description, ''))
                like 'q2c portal%'
                then 'portal'
            else 'card'
        end as payment_channel,
        case
            when charges.card_id is not null then 'card'
            else 'stripe'
        end as payment_method,
        coalesce(charges.receipt_number, charges.payment_intent_id) as reference_number,
        charges.currency_code,
        charges.amount,
        charges.amount_refunded,
        case
            when balance_transactions.currency_code = charges.currency_code
                then balance_transactions.fee_amount
        end as fee_amount,
        balance_transactions.currency_code as settlement_currency_code,
        balance_transactions.exchange_rate,
        cast(charges.created_at as date) as payment_date,
        charges.created_at

    from charges

    left join payment_intents
        on charges.payment_intent_id = payment_intents.payment_intent_id

    left join balance_transactions
        on charges.balance_transaction_id = balance_transactions.balance_transaction_id

    left join invoices
        on charges.invoice_id = invoices.invoice_id

    where charges.status = 'succeeded'
        and coalesce(charges.is_captured, true)
    {%- if not var('q2c_stripe_include_test_mode', false) %}
        and coalesce(charges.is_livemode, true)
    {%- endif %}

)

select * from final
