{{ config(alias='kpi_dispute_rate') }}

{{ q2c_published_columns(ref('kpi_dispute_rate')) }}
