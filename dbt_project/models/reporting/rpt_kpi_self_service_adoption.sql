{{ config(alias='kpi_self_service_adoption') }}

{{ q2c_published_columns(ref('kpi_self_service_adoption')) }}
