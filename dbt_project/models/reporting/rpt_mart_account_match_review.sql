{{ config(alias='mart_account_match_review') }}

{{ q2c_published_columns(ref('mart_account_match_review')) }}
