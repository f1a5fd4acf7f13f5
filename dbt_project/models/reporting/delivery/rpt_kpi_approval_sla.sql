{{ config(alias='kpi_approval_sla') }}

{{ q2c_published_columns(ref('kpi_approval_sla')) }}
