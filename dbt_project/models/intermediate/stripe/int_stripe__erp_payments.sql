{#- Succeeded Stripe charges as payments (int_stripe__charges_succeeded says which, and how
    channel, invoice number and fee are found). A charge that names an invoice, by Stripe
    invoice or by invoice number, applies its whole amount to it; any other charge is
    unapplied. Refunds and chargebacks are allocations of the payment, not a lower total.
    exchange_rate is the balance transaction's rate from the charge's currency to the
    settlement currency, kept only when that is the ERP home currency (var
    erp_home_currencies.stripe), the currency the contract's exchange_rate converts to. -#}
with

charges as (

    select * from {{ ref('int_stripe__charges_succeeded') }}

),

final as (

    select
        charge_id as payment_id,
        customer_id,
        payment_method,
        payment_channel,
        reference_number,
        currency_code,
        case
            when settlement_currency_code
                = '{{ var("erp_home_currencies", {}).get("stripe", "") | upper }}'
                then exchange_rate
        end as exchange_rate,
        amount as total_amount,
        case
            when invoice_id is not null or invoice_number is not null
                then cast(0 as decimal(20, 4))
            else amount
        end as unapplied_amount,
        fee_amount,
        payment_date,
        created_at,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at

    from charges

)

select * from final
