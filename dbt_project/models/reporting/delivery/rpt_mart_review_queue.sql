{{ config(alias='mart_review_queue') }}

{{ q2c_published_columns(ref('mart_review_queue')) }}
