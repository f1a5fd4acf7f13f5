with

invoices as (

    select * from {{ ref('int_erp_invoices') }}

),

accounts as (

    select * from {{ ref('dim_accounts') }}

),

lines_summed as (

    select * from {{ ref('int_invoice_lines_summed') }}

),

allocations_summed as (

    select * from {{ ref('int_invoice_allocations_summed') }}

),

disputes as (

    select * from {{ ref('int_invoices_disputed') }}

),

currencies as (

    select * from {{ ref('iso_currencies') }}

),

fx_rates as (

    select * from {{ ref('int_fx_rates_daily') }}

),

joined as (

    select
        invoices.*,
        accounts.account_key,
        accounts.billing_email as account_billing_email,
        currencies.minor_units as currency_minor_units,
        coalesce(lines_summed.subtotal_amount, 0) as subtotal_amount,
        coalesce(lines_summed.discount_amount, 0) as discount_amount,
        coalesce(allocations_summed.paid_amount, 0) as paid_amount,
        coalesce(allocations_summed.credited_amount, 0) as credited_amount,
        disputes.invoice_number is not null as is_disputed,
        {{ q2c_reporting_rate('invoices.currency_code', 'invoices.exchange_rate',
                              'fx_rates.rate', 'invoices.source_system') }} as reporting_rate,
        {{ q2c_as_of_date() }} as as_of_date

    from invoices

    left join accounts
        on invoices.source_system = accounts.erp_source_system
        and invoices.customer_id = accounts.erp_customer_id

    left join lines_summed
        on invoices.source_system = lines_summed.source_system
        and invoices.invoice_id = lines_summed.invoice_id

    left join allocations_summed
        on invoices.source_system = allocations_summed.source_system
        and invoices.invoice_id = allocations_summed.invoice_id

    left join disputes
        on invoices.invoice_number = disputes.invoice_number

    left join currencies
        on invoices.currency_code = currencies.currency_code

    left join fx_rates
        on invoices.currency_code = fx_rates.currency
        and invoices.issue_date >= fx_rates.valid_from
        and invoices.issue_date < fx_rates.valid_to

),

computed as (

    select
        *,
        cast(total_amount - paid_amount - credited_amount as decimal(20, 4))
            as computed_balance_amount,
        {#- The ERP's balance is the truth; the computed one stands in only when the ERP
            balance is missing. An invoice without a due date is due on its issue date. -#}
        coalesce(
            balance_amount,
            total_amount - paid_amount - credited_amount
        ) as open_amount,
        coalesce(due_date, issue_date) as effective_due_date

    from joined

),

final as (

    select
        {{ q2c_surrogate_key(['source_system', 'invoice_id']) }} as invoice_key,
        invoice_id,
        source_system,
        invoice_id as source_id,
        invoice_number,
        account_key,
        customer_id as erp_customer_id,
        crm_opportunity_id,
        order_id,
        po_number,
        issue_date,
        due_date,
        currency_code as currency,
        currency_minor_units,
        subtotal_amount,
        discount_amount,
        tax_amount,
        total_amount,
        paid_amount,
        credited_amount,
        balance_amount,
        computed_balance_amount,
        exchange_rate,
        cast(
            coalesce(
                home_total_amount,
                total_amount * exchange_rate,
                case when currency_code = {{ q2c_home_currency('source_system') }}
                    then total_amount end
            )
            as decimal(20, 4)
        ) as total_amount_home,
        cast('{{ var("reporting_currency") }}' as {{ dbt.type_string() }}) as reporting_currency,
        reporting_rate,
        cast(total_amount * reporting_rate as decimal(20, 4)) as total_amount_reporting,
        cast(open_amount * reporting_rate as decimal(20, 4)) as open_amount_reporting,
        case
            when open_amount <= 0 and credited_amount > 0 and paid_amount = 0
                then 'credited'
            when open_amount <= 0 then 'paid'
            when paid_amount + credited_amount > 0 or open_amount < total_amount
                then 'partially_paid'
            when effective_due_date < as_of_date then 'overdue'
            else 'open'
        end as status,
        is_disputed,
        case
            when open_amount > 0 and effective_due_date < as_of_date
                then {{ q2c_days_between('effective_due_date', 'as_of_date') }}
            else 0
        end as days_overdue,
        coalesce(billing_email, account_billing_email) as billing_email,
        email_status as erp_email_status,
        customer_memo,
        created_at,
        updated_at

    from computed

)

select * from final
