{{ config(alias='kpi_days_to_pay_by_account') }}

{{ q2c_published_columns(ref('kpi_days_to_pay_by_account')) }}
