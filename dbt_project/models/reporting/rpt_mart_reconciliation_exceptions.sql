{{ config(alias='mart_reconciliation_exceptions') }}

{{ q2c_published_columns(ref('mart_reconciliation_exceptions')) }}
