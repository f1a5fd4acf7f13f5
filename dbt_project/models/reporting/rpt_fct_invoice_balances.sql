{{ config(alias='fct_invoice_balances') }}

{{ q2c_published_columns(ref('fct_invoice_balances')) }}
