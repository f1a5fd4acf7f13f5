{#- Sage Intacct credit memos: AR adjustments with a negative total, as positive credit.
    The invoice is the only one the adjustment was applied to through payments. -#}
with

adjustments as (

    select * from {{ ref('stg_sage_intacct__ar_adjustments') }}
    where total_amount < 0

),

applied_invoices as (

    select
        adjustment_id,
        min(invoice_id) as invoice_id,
        count(distinct invoice_id) as invoice_count

    from {{ ref('stg_sage_intacct__ar_payment_details') }}

    where adjustment_id is not null

    group by adjustment_id

),

final as (

    select
        adjustments.adjustment_id as credit_note_id,
        adjustments.adjustment_number as credit_note_number,
        adjustments.customer_id,
        case
            when applied_invoices.invoice_count = 1 then applied_invoices.invoice_id
        end as invoice_id,
        adjustments.currency_code,
        adjustments.exchange_rate,
        -adjustments.total_amount as total_amount,
        cast(null as decimal(20, 4)) as tax_amount,
        abs(adjustments.due_amount) as remaining_credit_amount,
        adjustments.description as reason,
        adjustments.adjustment_date as issue_date,
        cast(null as {{ dbt.type_timestamp() }}) as created_at,
        adjustments.updated_at

    from adjustments

    left join applied_invoices
        on adjustments.adjustment_id = applied_invoices.adjustment_id

)

select * from final
