{#- The portal event kinds that are a customer helping themselves: q2c.portal.events
    .SELF_SERVICE, which a test keeps equal to this list. -#}
{% macro q2c_portal_self_service_kinds() -%}
    {{ return([
        'document_downloaded', 'dispute_opened', 'invoice_viewed', 'payment_started',
        'preference_changed', 'contact_change_requested', 'statement_viewed',
    ]) }}
{%- endmacro %}

{#- `expr` in the list of `values`, as SQL. -#}
{% macro q2c_in_list(expr, values) -%}
    {{ expr }} in ({%- for value in values %}'{{ value }}'{{ ", " if not loop.last }}{% endfor -%})
{%- endmacro %}
