{#- Per invoice, the sum of its item lines and of its discounts. Subtotal lines are printed
    totals and other lines carry no amount of their own, so neither is summed. A discount
    is counted by its size whichever sign its source stores it with. -#}
with

invoice_lines as (

    select * from {{ ref('int_erp_invoice_lines') }}

),

final as (

    select
        source_system,
        invoice_id,
        cast(coalesce(sum(
            case when line_type in ('item', 'shipping') then amount end
        ), 0) as decimal(20, 4)) as subtotal_amount,
        cast(coalesce(sum(
            case when line_type = 'discount' then abs(amount) end
        ), 0) as decimal(20, 4)) as discount_amount,
        count(
            case when line_type = 'item' then 1 end
        ) as item_line_count

    from invoice_lines

    group by source_system, invoice_id

)

select * from final
