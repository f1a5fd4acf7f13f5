{#- Won quotes still without an invoice more than N days after acceptance (revenue leakage),
    N = var unbilled_after_days. Formula, grain and caveats: _kpi__models.yml. -#}
{%- set after_days = var('unbilled_after_days', 30) | string | trim -%}
{%- if not modules.re.match('^[0-9]+$', after_days) -%}
    {{ exceptions.raise_compiler_error(
        "var unbilled_after_days must be a whole number of days >= 0, got '"
        ~ after_days ~ "'"
    ) }}
{%- endif -%}

with

quotes as (

    select * from {{ ref('fct_quotes') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

{#- An invoice issued after the as-of date did not exist yet on that day. -#}
unbilled as (

    select
        *,
        {{ q2c_days_between('accepted_date', q2c_as_of_date()) }} as days_since_accepted

    from quotes

    where is_won
        and accepted_date is not null
        and (
            first_invoice_issue_date is null
            or first_invoice_issue_date > {{ q2c_as_of_date() }}
        )

),

final as (

    select
        unbilled.quote_key,
        {{ q2c_as_of_date() }} as as_of_date,
        {{ after_days }} as unbilled_after_days,
        unbilled.source_system,
        unbilled.source_id,
        unbilled.account_key,
        accounts.account_name,
        unbilled.owner_name,
        unbilled.stage_name,
        unbilled.accepted_date,
        cast(unbilled.days_since_accepted as {{ dbt.type_int() }}) as days_since_accepted,
        unbilled.currency,
        cast(unbilled.amount as decimal(20, 4)) as amount_at_risk

    from unbilled

    left join accounts
        on unbilled.account_key = accounts.account_key

    where unbilled.days_since_accepted > {{ after_days }}

)

select * from final
