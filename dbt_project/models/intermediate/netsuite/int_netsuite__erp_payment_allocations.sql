{#- What NetSuite applied to each invoice: one row per payment or credit memo and invoice,
    summed over their linked lines. NetSuite applies a credit memo to an invoice directly,
    without a payment, so for those rows payment_id is the credit memo's id, as is
    credit_note_id. Links to deleted transactions are dropped. -#}
with

links as (

    select * from {{ ref('stg_netsuite__transaction_links') }}
    where link_type = 'Payment'
        and previous_type = 'CustInvc'
        and next_type in ('CustPymt', 'CustCred')

),

transactions as (

    select * from {{ ref('stg_netsuite__transactions') }}

),

applied as (

    select
        links.next_transaction_id,
        links.next_type,
        links.previous_transaction_id,
        {#- One unreadable link amount makes the whole application unknown (null), so the
            quality checks see it rather than a partial sum. -#}
        case
            when count(*) = count(links.amount) then sum(abs(links.amount))
        end as amount

    from links

    group by links.next_transaction_id, links.next_type, links.previous_transaction_id

),

final as (

    select
        applied.next_transaction_id as payment_id,
        cast(row_number() over (
            partition by applied.next_transaction_id
            order by invoices.document_number, applied.previous_transaction_id
        ) as integer) as line_index,
        applied.previous_transaction_id as invoice_id,
        invoices.document_number as invoice_number,
        case
            when applied.next_type = 'CustCred' then applied.next_transaction_id
        end as credit_note_id,
        case
            when applied.next_type = 'CustCred' then 'credit_note'
            else 'payment'
        end as allocation_kind,
        applied.amount,
        applicants.transaction_date as allocation_date

    from applied

    inner join transactions as invoices
        on applied.previous_transaction_id = invoices.transaction_id

    inner join transactions as applicants
        on applied.next_transaction_id = applicants.transaction_id

)

select * from final
