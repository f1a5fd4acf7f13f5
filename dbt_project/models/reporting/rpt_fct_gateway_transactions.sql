{{ config(alias='fct_gateway_transactions', enabled=var('q2c_stripe_enabled', false)) }}

{{ q2c_published_columns(ref('fct_gateway_transactions')) }}
