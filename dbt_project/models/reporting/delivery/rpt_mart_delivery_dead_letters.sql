{{ config(alias='mart_delivery_dead_letters') }}

{{ q2c_published_columns(ref('mart_delivery_dead_letters')) }}
