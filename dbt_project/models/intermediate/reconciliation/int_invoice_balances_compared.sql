{#- Per invoice, the open balance the ERP states against the one q2c computes from the
    invoice, its credit notes and the cash allocated to it (fct_invoice_balances). Part of
    q2c's allocations can be gateway cash no ERP payment records yet: a Stripe charge q2c
    allocated by its own rules. A charge an ERP payment records is never allocated by q2c
    (int_gateway_charge_erp_matches: that money is the ERP payment's), so every such
    allocation is cash still awaiting the ERP. It is reported on the charge's own row
    (missing_in_erp once the grace days have passed), so here it is the third view,
    gateway_amount, and the ERP should show q2c_amount + gateway_amount.
    difference_amount = erp_amount - q2c_amount - gateway_amount; beyond the currency's
    tolerance it is an amount_mismatch. An ERP that states no balance has nothing to
    compare and is not an exception. -#}
with

balances as (

    select * from {{ ref('fct_invoice_balances') }}

),

applications as (

    select * from {{ ref('fct_cash_applications') }}

),

tolerances as (

    select * from {{ ref('int_reconciliation_tolerances') }}

),

{#- q2c's own allocations of gateway cash (and their reversals); what an ERP or the
    gateway recorded is not q2c's, and fees settle nothing. -#}
awaiting_erp as (

    select
        invoice_key,
        sum(amount) as gateway_amount

    from applications

    where source_system = 'stripe'
        and not is_erp_recorded
        and payment_key is not null
        and allocation_type in ('payment', 'refund', 'chargeback')

    group by invoice_key

),

compared as (

    select
        balances.*,
        awaiting_erp.gateway_amount,
        coalesce(tolerances.tolerance_amount, 0) as tolerance_amount,
        balances.erp_balance_amount
        - balances.balance_amount
        - coalesce(awaiting_erp.gateway_amount, 0) as difference_amount

    from balances

    left join awaiting_erp
        on balances.invoice_key = awaiting_erp.invoice_key

    left join tolerances
        on balances.currency = tolerances.currency

),

final as (

    select
        cast('invoice_balance' as {{ dbt.type_string() }}) as check_name,
        invoice_key as item_id,
        cast(
            case
                when abs(difference_amount) > tolerance_amount then 'amount_mismatch'
            end
            as {{ dbt.type_string() }}
        ) as reason_code,
        source_system,
        account_key,
        invoice_key,
        invoice_id,
        invoice_number,
        cast(null as {{ dbt.type_string() }}) as payment_key,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        cast(null as {{ dbt.type_string() }}) as gateway_charge_id,
        cast(null as {{ dbt.type_string() }}) as payout_id,
        cast(null as {{ dbt.type_string() }}) as duplicate_of_id,
        currency,
        cast(null as {{ dbt.type_string() }}) as compared_currency,
        cast(erp_balance_amount as decimal(20, 4)) as erp_amount,
        cast(balance_amount as decimal(20, 4)) as q2c_amount,
        cast(gateway_amount as decimal(20, 4)) as gateway_amount,
        cast(difference_amount as decimal(20, 4)) as difference_amount,
        cast(tolerance_amount as decimal(20, 4)) as tolerance_amount,
        due_date as event_date,
        cast(
            {{ dbt.concat([
                "'The ERP and q2c disagree on what is still open on invoice '",
                "coalesce(invoice_number, invoice_id)",
                "': compare the payments and credit notes the ERP applied to it with "
                ~ "fct_cash_applications (where q2c also lists the cash it allocated by its "
                ~ "own rules), and apply or correct the missing one on the side that lacks "
                ~ "it.'",
            ]) }}
            as {{ dbt.type_string() }}
        ) as what_to_check

    from compared

)

select * from final
