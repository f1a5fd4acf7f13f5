{{ config(alias='kpi_dispute_resolution') }}

{{ q2c_published_columns(ref('kpi_dispute_resolution')) }}
