{{ config(alias='fct_interactions') }}

{{ q2c_published_columns(ref('fct_interactions')) }}
