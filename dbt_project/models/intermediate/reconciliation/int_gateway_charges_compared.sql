{#- Per gateway charge that names an invoice number, what the gateway took against what
    the ERP recorded. The first reason that applies, in this order:
    - missing_in_erp: no invoice of record carries the number (a void or mistyped one);
    - duplicate: an earlier charge already took the same amount in the same currency for
      the same invoice and neither was given back;
    - currency_mismatch: the ERP payment recording the charge, else the invoice, is in
      another currency than the charge;
    - missing_in_erp: the invoice is an ERP's (not Stripe's own) and no ERP payment records
      the charge once var reconciliation_grace_days have passed since it;
    - amount_mismatch: the ERP payment recording the charge differs from gateway_amount.
    A charge refunded or charged back in full has taken nothing, so neither of the two
    missing_in_erp reasons applies to it. Charges that name no invoice are unallocated
    cash (mart_unallocated_cash), not compared here. -#}
{%- set grace_days = var('reconciliation_grace_days', 1) | string | trim -%}
{%- if not modules.re.match('^[0-9]{1,3}$', grace_days) -%}
    {{ exceptions.raise_compiler_error(
        "var reconciliation_grace_days must be a whole number of days, 0 or more; got '"
        ~ grace_days ~ "'"
    ) }}
{%- endif -%}

with

charges as (

    select * from {{ ref('int_gateway_charges_netted') }}

),

invoices as (

    select * from {{ ref('fct_invoices') }}

),

charge_matches as (

    select * from {{ ref('int_gateway_charge_erp_matches') }}

),

tolerances as (

    select * from {{ ref('int_reconciliation_tolerances') }}

),

{#- One invoice per number: an ERP's before Stripe's copy, then by system and id. -#}
ranked_invoices as (

    select
        invoice_key,
        source_system,
        invoice_id,
        invoice_number,
        upper(trim(invoice_number)) as invoice_number_key,
        account_key,
        currency,
        row_number() over (
            partition by upper(trim(invoice_number))
            order by
                case when source_system = 'stripe' then 1 else 0 end,
                source_system,
                invoice_id
        ) as invoice_order

    from invoices

    where invoice_number is not null

),

invoiced_charges as (

    select * from charges
    where invoice_number_key is not null

),

kept_charges as (

    select
        charge_id,
        row_number() over (
            partition by invoice_number_key, currency, captured_amount
            order by created_at, charge_id
        ) as charge_order,
        first_value(charge_id) over (
            partition by invoice_number_key, currency, captured_amount
            order by created_at, charge_id
            rows between unbounded preceding and unbounded following
        ) as first_charge_id

    from invoiced_charges

    where net_collected_amount > 0

),

{#- The first ERP payment recording the charge (a second is int_erp_gateway_payments_compared's
    duplicate). -#}
recorded as (

    select * from charge_matches
    where match_rank = 1

),

joined as (

    select
        invoiced_charges.*,
        ranked_invoices.invoice_key,
        ranked_invoices.source_system as invoice_source_system,
        ranked_invoices.invoice_id as erp_invoice_id,
        ranked_invoices.account_key,
        ranked_invoices.currency as invoice_currency,
        kept_charges.charge_order,
        kept_charges.first_charge_id,
        recorded.payment_key as erp_payment_key,
        recorded.payment_id as erp_payment_id,
        recorded.currency as erp_payment_currency,
        recorded.amount as erp_payment_amount,
        coalesce(tolerances.tolerance_amount, 0) as tolerance_amount,
        {{ q2c_days_between('invoiced_charges.payment_date', q2c_as_of_date()) }}
            >= {{ grace_days }} as is_past_grace

    from invoiced_charges

    left join ranked_invoices
        on invoiced_charges.invoice_number_key = ranked_invoices.invoice_number_key
        and ranked_invoices.invoice_order = 1

    left join kept_charges
        on invoiced_charges.charge_id = kept_charges.charge_id

    left join recorded
        on invoiced_charges.charge_id = recorded.charge_id

    left join tolerances
        on invoiced_charges.currency = tolerances.currency

),

classified as (

    select
        *,
        case
            when invoice_key is null and net_collected_amount > tolerance_amount
                then 'missing_in_erp'
            when invoice_key is null then null
            when charge_order > 1 and captured_amount > tolerance_amount
                then 'duplicate'
            when coalesce(erp_payment_currency, invoice_currency) <> currency
                then 'currency_mismatch'
            when invoice_source_system <> 'stripe'
                and erp_payment_key is null
                and is_past_grace
                and net_collected_amount > tolerance_amount
                then 'missing_in_erp'
            when abs(erp_payment_amount - gateway_amount) > tolerance_amount
                then 'amount_mismatch'
        end as reason_code

    from joined

),

final as (

    select
        cast('gateway_charge' as {{ dbt.type_string() }}) as check_name,
        charge_id as item_id,
        cast(reason_code as {{ dbt.type_string() }}) as reason_code,
        coalesce(invoice_source_system, 'stripe') as source_system,
        account_key,
        invoice_key,
        erp_invoice_id as invoice_id,
        invoice_number,
        erp_payment_key as payment_key,
        erp_payment_id as payment_id,
        charge_id as gateway_charge_id,
        payout_id,
        case when reason_code = 'duplicate' then first_charge_id end as duplicate_of_id,
        currency,
        case
            when reason_code = 'currency_mismatch'
                then coalesce(erp_payment_currency, invoice_currency)
        end as compared_currency,
        cast(erp_payment_amount as decimal(20, 4)) as erp_amount,
        cast(null as decimal(20, 4)) as q2c_amount,
        cast(gateway_amount as decimal(20, 4)) as gateway_amount,
        cast(
            case
                when reason_code = 'currency_mismatch' then null
                when reason_code = 'duplicate' then captured_amount
                when reason_code = 'missing_in_erp' then -gateway_amount
                when erp_payment_amount is not null
                    then erp_payment_amount - gateway_amount
            end
            as decimal(20, 4)
        ) as difference_amount,
        cast(tolerance_amount as decimal(20, 4)) as tolerance_amount,
        payment_date as event_date,
        cast(
            case
                when reason_code = 'missing_in_erp' and invoice_key is null
                    then {{ dbt.concat([
                        "'Stripe charge '", "charge_id",
                        "' took money for invoice number '", "invoice_number",
                        "', which no ERP invoice carries: check the number in the charge "
                        ~ "(its Stripe invoice or q2c_invoice_number metadata) and whether "
                        ~ "the invoice is missing from the ERP sync.'",
                    ]) }}
                when reason_code = 'missing_in_erp'
                    then {{ dbt.concat([
                        "'Stripe charge '", "charge_id", "' paid invoice '", "invoice_number",
                        "' but the ERP records no payment for it: post the payment in the "
                        ~ "ERP with the charge id as its reference.'",
                    ]) }}
                when reason_code = 'duplicate'
                    then {{ dbt.concat([
                        "'Stripe charge '", "charge_id",
                        "' took the same amount for invoice '", "invoice_number",
                        "' as charge '", "first_charge_id",
                        "' before it: refund one of them if the customer paid twice.'",
                    ]) }}
                when reason_code = 'currency_mismatch'
                    then {{ dbt.concat([
                        "'Stripe charge '", "charge_id", "' for invoice '", "invoice_number",
                        "' is in another currency than the ERP records: check which "
                        ~ "currency the customer was charged in and correct the ERP payment "
                        ~ "or the invoice.'",
                    ]) }}
                when reason_code = 'amount_mismatch'
                    then {{ dbt.concat([
                        "'ERP payment '", "erp_payment_id",
                        "' records a different amount than Stripe charge '", "charge_id",
                        "' took for invoice '", "invoice_number",
                        "': correct the payment amount in the ERP (or book the gateway fee "
                        ~ "the way var reconciliation_erp_payment_basis says).'",
                    ]) }}
            end
            as {{ dbt.type_string() }}
        ) as what_to_check

    from classified

)

select * from final
