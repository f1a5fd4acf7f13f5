{#- Per invoice, the sum of its sales lines and of its discounts. Subtotal lines are
    printed totals and group or description lines carry no amount of their own, so
    neither is summed. -#}
with

invoice_lines as (

    select * from {{ ref('stg_quickbooks__invoice_lines') }}

),

final as (

    select
        invoice_id,
        cast(coalesce(sum(
            case when detail_type = 'SalesItemLineDetail' then amount end
        ), 0) as decimal(20, 4)) as subtotal_amount,
        cast(coalesce(sum(
            case when detail_type = 'DiscountLineDetail' then amount end
        ), 0) as decimal(20, 4)) as discount_amount,
        count(
            case when detail_type = 'SalesItemLineDetail' then 1 end
        ) as item_line_count

    from invoice_lines

    group by invoice_id

)

select * from final
