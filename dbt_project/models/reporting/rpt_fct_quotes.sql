{{ config(alias='fct_quotes') }}

{{ q2c_published_columns(ref('fct_quotes')) }}
