{{ config(alias='fct_payments') }}

{{ q2c_published_columns(ref('fct_payments')) }}
