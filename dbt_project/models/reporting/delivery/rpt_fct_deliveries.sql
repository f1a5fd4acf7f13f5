{{ config(alias='fct_deliveries') }}

{{ q2c_published_columns(ref('fct_deliveries')) }}
