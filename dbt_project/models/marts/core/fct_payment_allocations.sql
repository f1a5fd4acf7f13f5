with

allocations as (

    select * from {{ ref('int_payment_allocations_classified') }}

),

final as (

    select
        {{ q2c_surrogate_key(['source_system', 'payment_id', 'line_index']) }}
            as allocation_key,
        source_system,
        {{ dbt.concat(['payment_id', "'#'",
                       dbt.safe_cast('line_index', dbt.type_string())]) }} as source_id,
        case
            when has_payment then {{ q2c_surrogate_key(['source_system', 'payment_id']) }}
        end as payment_key,
        case
            when invoice_id is not null
                then {{ q2c_surrogate_key(['source_system', 'invoice_id']) }}
        end as invoice_key,
        case
            when credit_note_id is not null
                then {{ q2c_surrogate_key(['source_system', 'credit_note_id']) }}
        end as credit_note_key,
        payment_id,
        invoice_id,
        credit_note_id as credit_memo_id,
        allocation_type,
        allocation_date,
        currency_code as currency,
        amount

    from allocations

)

select * from final
