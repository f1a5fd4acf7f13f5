{#- Up to three invoices proposed for each unallocated amount, best first, each with the
    reason it is proposed. Candidates are invoices q2c still has open, in the amount's
    currency: those of the same account, and those of any account whose number the
    payment's reference names (reference_level 2) or whose number's digits, at least
    three, stand whole in the remittance reference (reference_level 1). Ranked by
    reference level, then closeness of the open amount to the unallocated amount, then
    due date, then key. -#}
with

items as (

    select * from {{ ref('int_cash_unallocated_items') }}

),

references_normalized as (

    select * from {{ ref('int_cash_references_normalized') }}

),

invoice_balances as (

    select * from {{ ref('fct_invoice_balances') }}

),

open_invoices as (

    select
        invoice_key,
        invoice_number,
        {{ q2c_normalize_reference('invoice_number') }} as number_normalized,
        {{ q2c_digits_only('invoice_number') }} as number_digits,
        account_key,
        currency,
        balance_amount,
        coalesce(due_date, issue_date) as effective_due_date

    from invoice_balances

    where balance_amount > 0

),

same_account as (

    select
        items.unallocated_key,
        open_invoices.invoice_key,
        0 as reference_level

    from items

    inner join open_invoices
        on items.account_key = open_invoices.account_key
        and items.currency = open_invoices.currency

),

referenced as (

    select
        items.unallocated_key,
        open_invoices.invoice_key,
        case
            when references_normalized.reference_kind = 'named_invoice'
                and references_normalized.reference_text = open_invoices.number_normalized
                then 2
            when references_normalized.reference_kind = 'remittance'
                and {{ q2c_reference_holds('references_normalized.reference_text',
                                           'open_invoices.number_normalized') }}
                then 2
            when references_normalized.reference_kind = 'remittance'
                and {{ dbt.length('open_invoices.number_digits') }} >= 3
                and {{ q2c_reference_holds('references_normalized.reference_text',
                                           'open_invoices.number_digits') }}
                then 1
            else 0
        end as reference_level

    from items

    inner join references_normalized
        on items.payment_key = references_normalized.payment_key

    inner join open_invoices
        on items.currency = open_invoices.currency

    where open_invoices.number_normalized is not null

),

pairs as (

    select
        unallocated_key,
        invoice_key,
        max(reference_level) as reference_level

    from (
        select * from same_account
        union all
        select * from referenced where reference_level > 0
    ) as proposed

    group by unallocated_key, invoice_key

),

scored as (

    select
        pairs.unallocated_key,
        pairs.invoice_key,
        pairs.reference_level,
        open_invoices.invoice_number,
        open_invoices.balance_amount as open_amount,
        open_invoices.effective_due_date,
        coalesce(open_invoices.account_key = items.account_key, false) as is_same_account,
        case
            when open_invoices.balance_amount > items.unallocated_amount
                then open_invoices.balance_amount - items.unallocated_amount
            else items.unallocated_amount - open_invoices.balance_amount
        end as amount_difference,
        case
            when open_invoices.balance_amount = items.unallocated_amount then 'equal'
            when open_invoices.balance_amount < items.unallocated_amount then 'below'
            else 'above'
        end as amount_comparison

    from pairs

    inner join items
        on pairs.unallocated_key = items.unallocated_key

    inner join open_invoices
        on pairs.invoice_key = open_invoices.invoice_key

),

ranked as (

    select
        *,
        row_number() over (
            partition by unallocated_key
            order by reference_level desc, amount_difference, effective_due_date,
                invoice_key
        ) as candidate_rank

    from scored

),

final as (

    select
        unallocated_key,
        cast(candidate_rank as integer) as candidate_rank,
        invoice_key,
        invoice_number,
        cast(open_amount as decimal(20, 4)) as open_amount,
        cast(amount_difference as decimal(20, 4)) as amount_difference,
        cast(reference_level as integer) as reference_level,
        is_same_account,
        {{ dbt.concat([
            "case when is_same_account then 'same account and currency'"
            ~ " else 'same currency, another account' end",
            "case reference_level"
            ~ " when 2 then '; the reference names its number'"
            ~ " when 1 then '; the reference holds the digits of its number'"
            ~ " else '' end",
            "case amount_comparison"
            ~ " when 'equal' then '; open amount equals the unallocated amount'"
            ~ " when 'below' then '; open amount is below the unallocated amount'"
            ~ " else '; open amount is above the unallocated amount' end",
        ]) }} as candidate_reason

    from ranked

    where candidate_rank <= 3

)

select * from final
