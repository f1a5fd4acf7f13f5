"""The raw tables q2c reads, in the column names Fivetran's connectors land.

A team that already syncs Salesforce or QuickBooks with a loading tool points q2c at those
tables; q2c's own loaders land the same shape. Only the columns listed here are read
downstream. A landed file may carry more (they are kept); a listed column that is missing is
added as empty and reported, except key columns, without which a row cannot be used.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawTable:
    """One landed table. `required` tables are the ones invoices cannot be printed without:
    when such a file is missing or unreadable the night stops, rather than send invoices
    without their lines or tax."""

    source: str
    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    soft_delete_column: str | None = None
    required: bool = False

    @property
    def schema(self) -> str:
        return f"raw_{self.source}"

    @property
    def relation(self) -> str:
        return f'{self.schema}."{self.name}"'

    def file_names(self) -> list[str]:
        """Names a landed export of this table may carry, preferred first.

        `account.csv` is q2c's own layout; `sf_account_data.csv` and `invoice_data.csv` are
        the names Fivetran's package seeds use, so those exports load unchanged.
        """
        prefix = "sf_" if self.source == "salesforce" else ""
        return [f"{self.name}.csv", f"{prefix}{self.name}_data.csv"]


def _cols(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SYNC = "_fivetran_synced"

SALESFORCE = (
    RawTable(
        "salesforce", "account", ("id",),
        _cols(f"""id name account_number parent_id type industry website phone owner_id
        billing_street billing_city billing_postal_code billing_state billing_country
        billing_country_code currency_iso_code vat_number_c preferred_language_c segment_c
        invoice_delivery_channel_c einvoice_format_c peppol_participant_id_c x12_partner_c
        created_date last_modified_date is_deleted {SYNC}"""),
        "is_deleted",
    ),
    RawTable(
        "salesforce", "contact", ("id",),
        _cols(f"""id account_id first_name last_name name email title phone
        mailing_country_code is_billing_contact_c has_opted_out_of_email created_date
        last_modified_date is_deleted {SYNC}"""),
        "is_deleted",
    ),
    RawTable(
        "salesforce", "opportunity", ("id",),
        _cols(f"""id account_id name amount currency_iso_code close_date created_date
        stage_name is_closed is_won owner_id type last_modified_date is_deleted {SYNC}"""),
        "is_deleted",
    ),
    RawTable(
        "salesforce", "opportunity_line_item", ("id",),
        _cols(f"""id opportunity_id product_2_id product_code name description quantity
        unit_price list_price total_price discount created_date is_deleted {SYNC}"""),
        "is_deleted",
    ),
    RawTable(
        "salesforce", "user", ("id",),
        _cols(f"id name email is_active _fivetran_deleted {SYNC}"),
        "_fivetran_deleted",
    ),
    RawTable(
        "salesforce", "case", ("id",),
        _cols(f"""id account_id contact_id case_number subject type reason status priority
        origin is_closed created_date closed_date invoice_number_c is_deleted {SYNC}"""),
        "is_deleted",
    ),
)

QUICKBOOKS = (
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

RAW_TABLES: tuple[RawTable, ...] = SALESFORCE + QUICKBOOKS
SOURCES = ("salesforce", "quickbooks")


def raw_table(source: str, name: str) -> RawTable:
    for table in RAW_TABLES:
        if table.source == source and table.name == name:
            return table
    raise KeyError(f"q2c reads no raw table {source}.{name}")
