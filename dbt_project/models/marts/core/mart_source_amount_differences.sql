{#- Invoices two systems both carry (the same invoice number in an ERP and in Stripe) whose
    amounts disagree. The ERP's figures are the record in every other mart; this lists
    what the other system says, so finance can correct one of them. -#}
with

invoices as (

    select * from {{ ref('int_erp_invoices_all') }}

),

erp as (

    select * from invoices where source_system <> 'stripe'

),

other as (

    select * from invoices where source_system = 'stripe'

),

compared as (

    select
        erp.invoice_number,
        erp.source_system as record_source_system,
        erp.invoice_id as record_source_id,
        other.source_system as other_source_system,
        other.invoice_id as other_source_id,
        erp.currency_code as record_currency,
        other.currency_code as other_currency,
        erp.total_amount as record_total_amount,
        other.total_amount as other_total_amount,
        erp.tax_amount as record_tax_amount,
        other.tax_amount as other_tax_amount,
        erp.balance_amount as record_balance_amount,
        other.balance_amount as other_balance_amount

    from erp

    inner join other
        on upper(trim(erp.invoice_number)) = upper(trim(other.invoice_number))

),

final as (

    select
        {{ q2c_surrogate_key(['record_source_system', 'record_source_id',
                              'other_source_system', 'other_source_id']) }}
            as difference_key,
        compared.*,
        case
            when record_currency <> other_currency then 'currency'
            when record_total_amount <> other_total_amount then 'total_amount'
            when coalesce(record_tax_amount, 0) <> coalesce(other_tax_amount, 0)
                then 'tax_amount'
            else 'balance_amount'
        end as difference,
        cast(other_total_amount - record_total_amount as decimal(20, 4))
            as total_amount_difference,
        cast(
            coalesce(other_balance_amount, 0) - coalesce(record_balance_amount, 0)
            as decimal(20, 4)
        ) as balance_amount_difference

    from compared

    where record_currency <> other_currency
        or record_total_amount <> other_total_amount
        or coalesce(record_tax_amount, 0) <> coalesce(other_tax_amount, 0)
        or coalesce(record_balance_amount, 0) <> coalesce(other_balance_amount, 0)

)

select * from final
