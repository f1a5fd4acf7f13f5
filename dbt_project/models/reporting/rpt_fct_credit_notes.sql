{{ config(alias='fct_credit_notes') }}

{{ q2c_published_columns(ref('fct_credit_notes')) }}
