{{ config(alias='kpi_portal_adoption') }}

{{ q2c_published_columns(ref('kpi_portal_adoption')) }}
