{{ config(alias='kpi_on_time_delivery') }}

{{ q2c_published_columns(ref('kpi_on_time_delivery')) }}
