{{ config(alias='fct_fx_rates') }}

{{ q2c_published_columns(ref('fct_fx_rates')) }}
