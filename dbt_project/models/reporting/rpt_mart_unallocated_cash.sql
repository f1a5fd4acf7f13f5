{{ config(alias='mart_unallocated_cash') }}

{{ q2c_published_columns(ref('mart_unallocated_cash')) }}
