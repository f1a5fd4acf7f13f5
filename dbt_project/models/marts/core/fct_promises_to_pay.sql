{#- Every promise to pay known on the as-of date, with whether it is current, kept or
    broken by then. Formula, grain and caveats: _promises__models.yml. -#}
with

interactions as (

    select * from {{ ref('fct_interactions') }}

),

invoices as (

    select * from {{ ref('fct_invoices') }}

),

allocations as (

    select * from {{ ref('fct_payment_allocations') }}

),

payments as (

    select * from {{ ref('fct_payments') }}

),

{#- A promise closed in the CRM by the as-of date (or closed with no date) was withdrawn or
    settled there; one closed later was still open on the as-of date. -#}
promises as (

    select
        interaction_key as promise_key,
        source_system,
        source_id,
        account_key,
        invoice_key,
        invoice_number,
        contact_id,
        cast(promised_amount as decimal(20, 4)) as promised_amount,
        upper(promised_currency) as promised_currency,
        promised_date,
        cast(created_at as date) as created_on,
        case
            when not coalesce(is_closed, false) then false
            when closed_at is null then true
            else cast(closed_at as date) <= {{ q2c_as_of_date() }}
        end as was_closed

    from interactions

    where interaction_type = 'promise_to_pay'
        and account_key is not null
        and cast(created_at as date) <= {{ q2c_as_of_date() }}

),

{#- Cash applied to the account's invoices, on the day it was paid. -#}
cash as (

    select
        invoices.account_key,
        invoices.invoice_key,
        invoices.invoice_number,
        allocations.currency,
        allocations.amount,
        coalesce(payments.payment_date, allocations.allocation_date) as paid_on

    from allocations

    inner join invoices
        on allocations.invoice_key = invoices.invoice_key

    left join payments
        on allocations.payment_key = payments.payment_key

    where allocations.allocation_type = 'payment'

),

{#- What was paid toward each promise: cash of its account (of its invoice when it names
    one, in its currency when it names one) from the day it was made to its promised day,
    known by the as-of date. -#}
paid_toward as (

    select
        promises.promise_key,
        sum(cash.amount) as paid_toward_amount

    from promises

    inner join cash
        on promises.account_key = cash.account_key
        and (
            (promises.invoice_key is null and promises.invoice_number is null)
            or promises.invoice_key = cash.invoice_key
            or (promises.invoice_key is null and promises.invoice_number = cash.invoice_number)
        )
        and (promises.promised_currency is null or promises.promised_currency = cash.currency)
        and cash.paid_on >= promises.created_on
        and cash.paid_on <= {{ q2c_as_of_date() }}
        and (promises.promised_date is null or cash.paid_on <= promises.promised_date)

    group by promises.promise_key

),

evaluated as (

    select
        promises.*,
        cast(coalesce(paid_toward.paid_toward_amount, 0) as decimal(20, 4))
            as paid_toward_amount,
        case
            when promises.promised_amount is null
                then coalesce(paid_toward.paid_toward_amount, 0) > 0
            else coalesce(paid_toward.paid_toward_amount, 0) >= promises.promised_amount
        end as is_kept

    from promises

    left join paid_toward
        on promises.promise_key = paid_toward.promise_key

),

final as (

    select
        promise_key,
        source_system,
        source_id,
        account_key,
        invoice_key,
        invoice_number,
        contact_id,
        promised_amount,
        promised_currency,
        promised_date,
        created_on,
        {{ q2c_as_of_date() }} as as_of_date,
        paid_toward_amount,
        case
            when is_kept then 'kept'
            when promised_date is null then 'undated'
            when promised_date >= {{ q2c_as_of_date() }} and was_closed then 'withdrawn'
            when promised_date >= {{ q2c_as_of_date() }} then 'current'
            else 'broken'
        end as promise_status

    from evaluated

)

select * from final
