{{ config(alias='dim_accounts') }}

{{ q2c_published_columns(ref('dim_accounts')) }}
