{{ config(alias='kpi_unbilled_won_quotes') }}

{{ q2c_published_columns(ref('kpi_unbilled_won_quotes')) }}
