{{ config(alias='fct_orders') }}

{{ q2c_published_columns(ref('fct_orders')) }}
