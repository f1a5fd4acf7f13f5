with

credit_notes as (

    select * from {{ ref('int_erp_credit_notes') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates_daily') }}

),

final as (

    select
        {{ q2c_surrogate_key(['credit_notes.source_system', 'credit_notes.credit_note_id']) }}
            as credit_note_key,
        credit_notes.source_system,
        credit_notes.credit_note_id as source_id,
        credit_notes.credit_note_id as credit_memo_id,
        credit_notes.credit_note_number,
        accounts.account_key,
        case
            when credit_notes.invoice_id is not null
                then {{ q2c_surrogate_key(['credit_notes.source_system',
                                           'credit_notes.invoice_id']) }}
        end as invoice_key,
        credit_notes.issue_date,
        credit_notes.currency_code as currency,
        credit_notes.total_amount,
        credit_notes.tax_amount,
        credit_notes.remaining_credit_amount as remaining_credit,
        credit_notes.reason,
        cast(
            credit_notes.total_amount
            * {{ q2c_reporting_rate('credit_notes.currency_code', 'credit_notes.exchange_rate',
                                    'fx_rates.rate', 'credit_notes.source_system') }}
            as decimal(20, 4)
        ) as total_amount_reporting

    from credit_notes

    left join accounts
        on credit_notes.source_system = accounts.erp_source_system
        and credit_notes.customer_id = accounts.erp_customer_id

    left join fx_rates
        on credit_notes.currency_code = fx_rates.currency
        and credit_notes.issue_date >= fx_rates.valid_from
        and credit_notes.issue_date < fx_rates.valid_to

)

select * from final
