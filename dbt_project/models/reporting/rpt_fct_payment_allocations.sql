{{ config(alias='fct_payment_allocations') }}

{{ q2c_published_columns(ref('fct_payment_allocations')) }}
