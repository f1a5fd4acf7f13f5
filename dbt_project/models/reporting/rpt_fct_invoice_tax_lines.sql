{{ config(alias='fct_invoice_tax_lines') }}

{{ q2c_published_columns(ref('fct_invoice_tax_lines')) }}
