{#- HubSpot deals as CRM opportunities. The account is the deal's primary company
    (association type 5), else its first associated company by id. A deal is closed when its
    pipeline stage is closed, and won when that closed stage has probability 1; a deal whose
    stage is not in deal_pipeline_stage falls back to HubSpot's hs_is_closed and
    hs_is_closed_won. -#}
with

deals as (

    select * from {{ ref('stg_hubspot__deals') }}

),

stages as (

    select * from {{ ref('stg_hubspot__deal_pipeline_stages') }}

),

deal_companies as (

    select * from {{ ref('stg_hubspot__deal_companies') }}

),

ranked_companies as (

    select
        deal_id,
        company_id,
        row_number() over (
            partition by deal_id
            order by
                case when association_type_id = '5' then 0 else 1 end,
                company_id
        ) as company_rank

    from deal_companies

),

primary_companies as (

    select * from ranked_companies
    where company_rank = 1

),

final as (

    select
        deals.deal_id as opportunity_id,
        primary_companies.company_id as account_id,
        deals.owner_id,
        deals.deal_name as opportunity_name,
        coalesce(stages.stage_label, deals.stage_id) as stage_name,
        deals.deal_type as opportunity_type,
        deals.currency_code,
        deals.amount,
        case
            when stages.stage_id is not null then stages.is_closed
            else deals.is_closed_flag
        end as is_closed,
        case
            when stages.stage_id is not null
                then coalesce(stages.is_closed, false) and stages.probability >= 1
            else deals.is_closed_won_flag
        end as is_won,
        deals.close_date,
        deals.created_at,
        deals.updated_at

    from deals

    left join stages
        on deals.stage_id = stages.stage_id

    left join primary_companies
        on deals.deal_id = primary_companies.deal_id

    where not deals.is_deleted

)

select * from final
