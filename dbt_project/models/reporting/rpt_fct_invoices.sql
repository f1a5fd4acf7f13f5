{{ config(alias='fct_invoices') }}

{{ q2c_published_columns(ref('fct_invoices')) }}
