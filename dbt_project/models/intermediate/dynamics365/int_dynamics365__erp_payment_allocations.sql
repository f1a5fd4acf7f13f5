select
    payment_id,
    cast(row_number() over (
        partition by payment_id
        order by line_number, invoice_number
    ) as integer) as line_index,
    invoice_id,
    invoice_number,
    credit_note_id,
    allocation_kind,
    amount,
    allocation_date

from {{ ref('int_dynamics365__payment_applications') }}
