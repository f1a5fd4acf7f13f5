{{ config(alias='mart_reconciliation_summary') }}

{{ q2c_published_columns(ref('mart_reconciliation_summary')) }}
