{{ config(alias='fct_payouts', enabled=var('q2c_stripe_enabled', false)) }}

{{ q2c_published_columns(ref('fct_payouts')) }}
