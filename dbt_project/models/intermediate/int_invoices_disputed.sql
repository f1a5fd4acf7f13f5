{#- Invoice numbers under an open billing dispute: a Salesforce case of type 'Billing
    Dispute' that is not closed and names the invoice in invoice_number_c. -#}
with

cases as (

    select * from {{ ref('stg_salesforce__cases') }}

),

final as (

    select
        invoice_number,
        count(*) as open_dispute_count,
        min(created_at) as first_disputed_at

    from cases

    where lower(case_type) = 'billing dispute'
        and not coalesce(is_closed, false)
        and invoice_number is not null

    group by invoice_number

)

select * from final
