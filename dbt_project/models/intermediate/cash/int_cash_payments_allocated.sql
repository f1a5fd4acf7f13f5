{#- q2c's own allocations of unapplied cash, one row per payment and invoice, with the
    rule that made each: remittance_reference, then exact_amount, then oldest_first
    (rule_order 1 to 3, the order they run in). Rows of nothing (a reference that named an
    invoice with nothing left open) are left out. -#}
with

by_reference as (

    select * from {{ ref('int_cash_allocations_by_reference') }}

),

by_exact_amount as (

    select * from {{ ref('int_cash_allocations_by_exact_amount') }}

),

oldest_first as (

    select * from {{ ref('int_cash_allocations_oldest_first') }}

),

unioned as (

    select
        payment_key,
        invoice_key,
        'remittance_reference' as allocation_rule,
        1 as rule_order,
        allocated_on,
        amount

    from by_reference

    union all

    select
        payment_key,
        invoice_key,
        'exact_amount' as allocation_rule,
        2 as rule_order,
        allocated_on,
        amount

    from by_exact_amount

    union all

    select
        payment_key,
        invoice_key,
        'oldest_first' as allocation_rule,
        3 as rule_order,
        allocated_on,
        amount

    from oldest_first

),

final as (

    select * from unioned
    where amount > 0

)

select * from final
