{{ config(alias='kpi_first_contact_resolution') }}

{{ q2c_published_columns(ref('kpi_first_contact_resolution')) }}
