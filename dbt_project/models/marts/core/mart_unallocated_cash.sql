{#- Cash (and credit) no invoice has taken, one row per amount, with up to three invoices
    proposed for it and why (int_cash_candidates_ranked). days_unallocated counts from
    the payment (credit note) date, or the last allocation of an overpaid invoice, to the
    as-of date (var as_of_date). -#}
with

items as (

    select * from {{ ref('int_cash_unallocated_items') }}

),

candidates as (

    select * from {{ ref('int_cash_candidates_ranked') }}

),

proposals as (

    select
        unallocated_key,
        count(*) as candidate_count,
        {%- for rank in [1, 2, 3] %}
        max(case when candidate_rank = {{ rank }} then invoice_key end)
            as candidate_{{ rank }}_invoice_key,
        max(case when candidate_rank = {{ rank }} then invoice_number end)
            as candidate_{{ rank }}_invoice_number,
        max(case when candidate_rank = {{ rank }} then open_amount end)
            as candidate_{{ rank }}_open_amount,
        max(case when candidate_rank = {{ rank }} then candidate_reason end)
            as candidate_{{ rank }}_reason{{ ',' if not loop.last }}
        {%- endfor %}

    from candidates

    group by unallocated_key

),

final as (

    select
        items.unallocated_key,
        items.unallocated_kind,
        items.source_system,
        items.source_id,
        items.payment_key,
        items.credit_note_key,
        items.invoice_key,
        items.account_key,
        items.currency,
        items.unallocated_since,
        items.document_amount,
        items.unallocated_amount,
        items.unallocated_reason,
        items.reference_number,
        {{ q2c_as_of_date() }} as as_of_date,
        cast(
            {{ q2c_days_between('items.unallocated_since', q2c_as_of_date()) }} as integer
        ) as days_unallocated,
        cast(coalesce(proposals.candidate_count, 0) as integer) as candidate_count,
        {%- for rank in [1, 2, 3] %}
        proposals.candidate_{{ rank }}_invoice_key,
        proposals.candidate_{{ rank }}_invoice_number,
        cast(proposals.candidate_{{ rank }}_open_amount as decimal(20, 4))
            as candidate_{{ rank }}_open_amount,
        proposals.candidate_{{ rank }}_reason{{ ',' if not loop.last }}
        {%- endfor %}

    from items

    left join proposals
        on items.unallocated_key = proposals.unallocated_key

)

select * from final
