{{ config(alias='fct_cash_applications') }}

{{ q2c_published_columns(ref('fct_cash_applications')) }}
