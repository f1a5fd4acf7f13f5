{{ config(alias='kpi_dso_monthly') }}

{{ q2c_published_columns(ref('kpi_dso_monthly')) }}
