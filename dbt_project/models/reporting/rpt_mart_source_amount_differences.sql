{{ config(alias='mart_source_amount_differences') }}

{{ q2c_published_columns(ref('mart_source_amount_differences')) }}
