"""Salesforce CRM objects in the Fivetran Salesforce connector's shape."""

from q2c.sources.raw_table import SYNC, RawTable
from q2c.sources.raw_table import columns as _cols

TABLES = (
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
