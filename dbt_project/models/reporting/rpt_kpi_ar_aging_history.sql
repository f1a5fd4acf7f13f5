{{ config(alias='kpi_ar_aging_history') }}

{{ q2c_published_columns(ref('kpi_ar_aging_history')) }}
