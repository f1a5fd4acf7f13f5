{{ config(alias='kpi_days_to_pay_monthly') }}

{{ q2c_published_columns(ref('kpi_days_to_pay_monthly')) }}
