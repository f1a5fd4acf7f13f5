{#- HubSpot deal line items as opportunity lines. The total is HubSpot's net amount; a line
    landed without it is priced as quantity x (unit price - unit discount) x (1 - discount
    percent), rounded to the minor units of the line's currency (else its deal's, else 2).
    HubSpot keeps one price per line item, so list_price is null. -#}
with

line_items as (

    select * from {{ ref('stg_hubspot__line_items') }}

),

line_item_deals as (

    select * from {{ ref('stg_hubspot__line_item_deals') }}

),

deals as (

    select * from {{ ref('stg_hubspot__deals') }}

),

currencies as (

    select * from {{ ref('iso_currencies') }}

),

line_deals as (

    select
        line_item_id,
        min(deal_id) as deal_id

    from line_item_deals

    group by line_item_id

),

priced as (

    select
        line_items.*,
        line_deals.deal_id,
        coalesce(currencies.minor_units, 2) as minor_units,
        line_items.quantity
            * (line_items.unit_price - coalesce(line_items.unit_discount, 0))
            * (1 - coalesce(line_items.discount_percent, 0) * 0.01) as computed_total

    from line_items

    left join line_deals
        on line_items.line_item_id = line_deals.line_item_id

    left join deals
        on line_deals.deal_id = deals.deal_id

    left join currencies
        on coalesce(line_items.currency_code, deals.currency_code) = currencies.currency_code

),

final as (

    select
        line_item_id as opportunity_line_item_id,
        deal_id as opportunity_id,
        coalesce(product_id, hs_product_id) as product_id,
        sku as product_code,
        line_name,
        description,
        quantity,
        unit_price,
        cast(null as decimal(20, 6)) as list_price,
        coalesce(
            amount,
            case minor_units
                when 0 then cast(round(computed_total, 0) as decimal(20, 4))
                when 3 then cast(round(computed_total, 3) as decimal(20, 4))
                when 4 then cast(round(computed_total, 4) as decimal(20, 4))
                else cast(round(computed_total, 2) as decimal(20, 4))
            end
        ) as total_price,
        discount_percent,
        created_at

    from priced

    where not is_deleted

)

select * from final
