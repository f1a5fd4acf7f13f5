{#- The conformed shape every source adapter delivers, one entity at a time.

    A source adapter is a model named int_<source>__<entity> (for example
    int_hubspot__crm_accounts). It selects these columns, by these names, with soft-deleted
    rows already dropped. The union model int_<entity> casts every column to the type given
    here, adds source_system, and reads only the adapters of enabled sources
    (var q2c_<source>_enabled). Types: string, date, timestamp, boolean, integer, amount
    (decimal 20,4), quantity (decimal 20,6), rate (decimal 20,10), percent (decimal 9,4). -#}

{% macro q2c_conformed_contract() %}
    {{ return({
        'crm_accounts': {
            'providers': ['salesforce', 'hubspot'],
            'columns': [
                ('account_id', 'string'), ('account_number', 'string'),
                ('parent_account_id', 'string'), ('owner_id', 'string'),
                ('account_name', 'string'), ('account_type', 'string'),
                ('industry', 'string'), ('website', 'string'), ('phone', 'string'),
                ('vat_number', 'string'), ('preferred_language', 'string'),
                ('segment', 'string'), ('invoice_delivery_channel', 'string'),
                ('einvoice_format', 'string'), ('peppol_participant_id', 'string'),
                ('x12_partner', 'string'), ('billing_street', 'string'),
                ('billing_city', 'string'), ('billing_postal_code', 'string'),
                ('billing_state', 'string'), ('billing_country', 'string'),
                ('billing_country_code', 'string'), ('currency_code', 'string'),
                ('created_at', 'timestamp'), ('updated_at', 'timestamp'),
            ],
        },
        'crm_contacts': {
            'providers': ['salesforce', 'hubspot'],
            'columns': [
                ('contact_id', 'string'), ('account_id', 'string'),
                ('first_name', 'string'), ('last_name', 'string'),
                ('contact_name', 'string'), ('email', 'string'), ('title', 'string'),
                ('phone', 'string'), ('mailing_country_code', 'string'),
                ('is_billing_contact', 'boolean'), ('has_opted_out_of_email', 'boolean'),
                ('created_at', 'timestamp'), ('updated_at', 'timestamp'),
            ],
        },
        'crm_users': {
            'providers': ['salesforce', 'hubspot'],
            'columns': [
                ('user_id', 'string'), ('user_name', 'string'), ('email', 'string'),
                ('is_active', 'boolean'),
            ],
        },
        'crm_opportunities': {
            'providers': ['salesforce', 'hubspot'],
            'columns': [
                ('opportunity_id', 'string'), ('account_id', 'string'),
                ('owner_id', 'string'), ('opportunity_name', 'string'),
                ('stage_name', 'string'), ('opportunity_type', 'string'),
                ('currency_code', 'string'), ('amount', 'amount'),
                ('is_closed', 'boolean'), ('is_won', 'boolean'), ('close_date', 'date'),
                ('created_at', 'timestamp'), ('updated_at', 'timestamp'),
            ],
        },
        'crm_opportunity_lines': {
            'providers': ['salesforce', 'hubspot'],
            'columns': [
                ('opportunity_line_item_id', 'string'), ('opportunity_id', 'string'),
                ('product_id', 'string'), ('product_code', 'string'),
                ('line_name', 'string'), ('description', 'string'),
                ('quantity', 'quantity'), ('unit_price', 'quantity'),
                ('list_price', 'quantity'), ('total_price', 'amount'),
                ('discount_percent', 'percent'), ('created_at', 'timestamp'),
            ],
        },
        'crm_interactions': {
            'providers': ['salesforce', 'hubspot'],
            'columns': [
                ('interaction_id', 'string'), ('account_id', 'string'),
                ('contact_id', 'string'), ('owner_id', 'string'),
                ('interaction_type', 'string'), ('reference_number', 'string'),
                ('subject', 'string'), ('category', 'string'),
                ('is_billing', 'boolean'), ('is_dispute', 'boolean'),
                ('invoice_number', 'string'), ('status', 'string'),
                ('priority', 'string'), ('channel', 'string'), ('is_closed', 'boolean'),
                ('contact_count', 'integer'), ('promised_amount', 'amount'),
                ('promised_currency_code', 'string'), ('promised_date', 'date'),
                ('created_at', 'timestamp'), ('closed_at', 'timestamp'),
            ],
        },
        'erp_customers': {
            'providers': ['quickbooks', 'netsuite', 'dynamics365', 'sage_intacct', 'stripe'],
            'columns': [
                ('customer_id', 'string'), ('parent_customer_id', 'string'),
                ('display_name', 'string'), ('company_name', 'string'),
                ('contact_name', 'string'), ('email', 'string'), ('website', 'string'),
                ('tax_id', 'string'), ('currency_code', 'string'),
                ('preferred_delivery_method', 'string'), ('billing_street', 'string'),
                ('billing_city', 'string'), ('billing_postal_code', 'string'),
                ('billing_region', 'string'), ('billing_country', 'string'),
                ('payment_term_days', 'integer'), ('balance_amount', 'amount'),
                ('is_active', 'boolean'), ('created_at', 'timestamp'),
                ('updated_at', 'timestamp'),
            ],
        },
        'erp_invoices': {
            'providers': ['quickbooks', 'netsuite', 'dynamics365', 'sage_intacct', 'stripe'],
            'columns': [
                ('invoice_id', 'string'), ('invoice_number', 'string'),
                ('customer_id', 'string'), ('crm_opportunity_id', 'string'),
                ('order_id', 'string'), ('po_number', 'string'),
                ('currency_code', 'string'), ('billing_email', 'string'),
                ('customer_memo', 'string'), ('email_status', 'string'),
                ('exchange_rate', 'rate'), ('tax_amount', 'amount'),
                ('total_amount', 'amount'), ('balance_amount', 'amount'),
                ('home_total_amount', 'amount'), ('issue_date', 'date'),
                ('due_date', 'date'), ('created_at', 'timestamp'),
                ('updated_at', 'timestamp'),
            ],
        },
        'erp_invoice_lines': {
            'providers': ['quickbooks', 'netsuite', 'dynamics365', 'sage_intacct', 'stripe'],
            'columns': [
                ('invoice_id', 'string'), ('line_index', 'integer'),
                ('line_type', 'string'), ('item_id', 'string'), ('item_name', 'string'),
                ('description', 'string'), ('quantity', 'quantity'),
                ('unit_price', 'quantity'), ('amount', 'amount'), ('tax_code', 'string'),
                ('discount_percent', 'percent'),
            ],
        },
        'erp_invoice_tax_lines': {
            'providers': ['quickbooks', 'netsuite', 'dynamics365', 'sage_intacct', 'stripe'],
            'columns': [
                ('invoice_id', 'string'), ('line_index', 'integer'),
                ('tax_rate_id', 'string'), ('tax_percent', 'percent'),
                ('taxable_amount', 'amount'), ('tax_amount', 'amount'),
            ],
        },
        'erp_credit_notes': {
            'providers': ['quickbooks', 'netsuite', 'dynamics365', 'sage_intacct', 'stripe'],
            'columns': [
                ('credit_note_id', 'string'), ('credit_note_number', 'string'),
                ('customer_id', 'string'), ('invoice_id', 'string'),
                ('currency_code', 'string'), ('exchange_rate', 'rate'),
                ('total_amount', 'amount'), ('tax_amount', 'amount'),
                ('remaining_credit_amount', 'amount'), ('reason', 'string'),
                ('issue_date', 'date'), ('created_at', 'timestamp'),
                ('updated_at', 'timestamp'),
            ],
        },
        'erp_payments': {
            'providers': ['quickbooks', 'netsuite', 'dynamics365', 'sage_intacct', 'stripe'],
            'columns': [
                ('payment_id', 'string'), ('customer_id', 'string'),
                ('payment_method', 'string'), ('payment_channel', 'string'),
                ('reference_number', 'string'), ('currency_code', 'string'),
                ('exchange_rate', 'rate'), ('total_amount', 'amount'),
                ('unapplied_amount', 'amount'), ('fee_amount', 'amount'),
                ('payment_date', 'date'), ('created_at', 'timestamp'),
                ('updated_at', 'timestamp'),
            ],
        },
        'erp_payment_allocations': {
            'providers': ['quickbooks', 'netsuite', 'dynamics365', 'sage_intacct', 'stripe'],
            'columns': [
                ('payment_id', 'string'), ('line_index', 'integer'),
                ('invoice_id', 'string'), ('invoice_number', 'string'),
                ('credit_note_id', 'string'), ('allocation_kind', 'string'),
                ('amount', 'amount'), ('allocation_date', 'date'),
            ],
        },
    }) }}
{% endmacro %}


{#- The warehouse type of a contract kind; a warehouse with other names brings its own. -#}
{% macro q2c_conformed_type(kind) %}
    {{- return(adapter.dispatch('q2c_conformed_type', 'q2c')(kind)) -}}
{% endmacro %}

{% macro default__q2c_conformed_type(kind) %}
    {%- if kind == 'string' -%} {{ dbt.type_string() }}
    {%- elif kind == 'date' -%} date
    {%- elif kind == 'timestamp' -%} {{ dbt.type_timestamp() }}
    {%- elif kind == 'boolean' -%} boolean
    {%- elif kind == 'integer' -%} integer
    {%- elif kind == 'amount' -%} decimal(20, 4)
    {%- elif kind == 'quantity' -%} decimal(20, 6)
    {%- elif kind == 'rate' -%} decimal(20, 10)
    {%- elif kind == 'percent' -%} decimal(9, 4)
    {%- else -%} {{ exceptions.raise_compiler_error('q2c_conformed_type: unknown kind ' ~ kind) }}
    {%- endif -%}
{% endmacro %}


{% macro q2c_source_enabled(source) %}
    {{ return(var('q2c_' ~ source ~ '_enabled', source in ['salesforce', 'quickbooks'])) }}
{% endmacro %}


{#- Every enabled source's adapter for one entity, cast to the contract, in one union. With
    no source enabled the result is empty but keeps its columns and types. -#}
{% macro q2c_union_conformed(entity) %}
    {{- return(adapter.dispatch('q2c_union_conformed', 'q2c')(entity)) -}}
{% endmacro %}

{% macro default__q2c_union_conformed(entity) %}
    {%- set spec = q2c_conformed_contract()[entity] -%}
    {%- set enabled = [] -%}
    {%- for source in spec['providers'] if q2c_source_enabled(source) -%}
        {%- do enabled.append(source) -%}
    {%- endfor -%}
    {%- if enabled | length == 0 %}
    select
        cast(null as {{ dbt.type_string() }}) as source_system,
        {%- for name, kind in spec['columns'] %}
        cast(null as {{ q2c_conformed_type(kind) }}) as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
    where 1 = 0
    {%- endif %}
    {%- for source in enabled %}
    select
        cast('{{ source }}' as {{ dbt.type_string() }}) as source_system,
        {%- for name, kind in spec['columns'] %}
        cast({{ name }} as {{ q2c_conformed_type(kind) }}) as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('int_' ~ source ~ '__' ~ entity) }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
{% endmacro %}
