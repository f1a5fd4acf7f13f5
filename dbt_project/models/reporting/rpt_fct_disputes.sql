{{ config(alias='fct_disputes') }}

{{ q2c_published_columns(ref('fct_disputes')) }}
