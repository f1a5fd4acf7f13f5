{#- Every open amount lands in exactly one aging bucket. -#}
select *

from {{ ref('kpi_ar_aging') }}

where current_amount + days_1_30_amount + days_31_60_amount + days_61_90_amount
    + days_over_90_amount != total_open_amount
