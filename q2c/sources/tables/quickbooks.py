"""QuickBooks Online objects in the Fivetran QuickBooks connector's shape."""

from q2c.sources.raw_table import SYNC, RawTable
from q2c.sources.raw_table import columns as _cols

TABLES = (
    RawTable(
        "quickbooks", "customer", ("id",),
        _cols(f"""id display_name company_name fully_qualified_name given_name family_name
        email website currency_id active balance bill_address_id parent_customer_id
        preferred_delivery_method sales_term_id taxable primary_tax_identifier
        created_at updated_at _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
        required=True,
    ),
    RawTable(
        "quickbooks", "address", ("id",),
        _cols(f"""id line_1 line_2 city country country_sub_division_code postal_code
        {SYNC}"""),
    ),
    RawTable(
        "quickbooks", "item", ("id",),
        _cols(f"""id name fully_qualified_name description type unit_price active
        created_at updated_at _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
    ),
    RawTable(
        "quickbooks", "term", ("id",),
        _cols(f"""id name type due_days discount_days discount_percent active
        created_at updated_at _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
    ),
    RawTable(
        "quickbooks", "invoice", ("id",),
        _cols(f"""id doc_number customer_id transaction_date due_date currency_id
        exchange_rate total_amount total_tax balance home_balance home_total_amount
        billing_email billing_address_id sales_term_id customer_memo private_note
        email_status apply_tax_after_discount custom_salesforce_opportunity_id
        created_at updated_at _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
        required=True,
    ),
    RawTable(
        "quickbooks", "invoice_line", ("invoice_id", "index"),
        _cols(f"""invoice_id index amount description detail_type
        sales_item_item_id sales_item_quantity sales_item_unit_price sales_item_tax_code_id
        item_id quantity tax_code_id discount_discount_percent
        discount_percent_based sub_total_item_id {SYNC}"""),
        required=True,
    ),
    RawTable(
        "quickbooks", "invoice_tax_line", ("invoice_id", "index"),
        _cols(f"""invoice_id index amount net_amount_taxable tax_percent tax_rate_id
        percent_based tax_inclusive_amount _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
        required=True,
    ),
    RawTable(
        "quickbooks", "payment", ("id",),
        _cols(f"""id customer_id transaction_date currency_id exchange_rate total_amount
        unapplied_amount reference_number payment_method_id private_note
        created_at updated_at _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
    ),
    RawTable(
        "quickbooks", "payment_line", ("payment_id", "index"),
        _cols(f"payment_id index amount invoice_id credit_memo_id {SYNC}"),
    ),
    RawTable(
        "quickbooks", "credit_memo", ("id",),
        _cols(f"""id doc_number customer_id transaction_date currency_id exchange_rate
        total_amount total_tax balance remaining_credit customer_memo private_note
        created_at updated_at _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
    ),
)
