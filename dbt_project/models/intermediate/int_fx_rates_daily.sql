{#- One rate per currency and day, valid until the next known day but for at most var
    fx_rate_max_age_days days: the reference rate when the treasury gave one, else the rate
    of the most recently recorded ERP document. After that an amount stays unconverted
    rather than take a stale rate. -#}
with

observed as (

    select * from {{ ref('int_fx_rates_observed') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by currency, rate_date
            order by
                case when rate_source = 'reference' then 0 else 1 end,
                recorded_at desc nulls last,
                source_system,
                source_id
        ) as day_rank

    from observed

),

daily as (

    select
        currency,
        rate_date,
        rate,
        rate_source,
        source_system,
        source_id

    from ranked

    where day_rank = 1

),

final as (

    select
        currency,
        rate_date as valid_from,
        coalesce(
            lead(rate_date) over (partition by currency order by rate_date),
            cast('9999-12-31' as date)
        ) as next_rate_date,
        rate,
        rate_source,
        source_system,
        source_id

    from daily

),

capped as (

    select
        currency,
        valid_from,
        case
            when next_rate_date > {{ q2c_add_days('valid_from', var('fx_rate_max_age_days')) }}
                then {{ q2c_add_days('valid_from', var('fx_rate_max_age_days')) }}
            else next_rate_date
        end as valid_to,
        rate,
        rate_source,
        source_system,
        source_id

    from final

)

select * from capped
