{{ config(alias='kpi_time_to_invoice') }}

{{ q2c_published_columns(ref('kpi_time_to_invoice')) }}
