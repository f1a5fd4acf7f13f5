"""HubSpot CRM objects in the Fivetran HubSpot connector's shape.

Fivetran lands each HubSpot property as a `property_<name>` column and each association as
its own table (`deal_company`, `ticket_contact`, `line_item_deal`, ...). Companies, deals
and tickets carry HubSpot's own `is_deleted` flag as well as `_fivetran_deleted`; staging
drops a row when either is true, `soft_delete_column` names the one HubSpot sets.

The custom company properties q2c reads (`vat_number`, `preferred_language`, `segment`,
`invoice_delivery_channel`, `einvoice_format`, `peppol_participant_id`, `x12_partner`) and
the contact's `billing_contact` and the ticket's `invoice_number` are the internal names a
portal gives them; a portal without them lands the columns empty.

Engagements come in two shapes: the v3 one, where each typed table (`engagement_call`, ...)
carries `property_hs_timestamp` and `property_hubspot_owner_id`, and the older one, where
the parent `engagement` table has `owner_id` and `timestamp` and meetings have `title` and
`start_time`. Both are read.
"""

from q2c.sources.raw_table import SYNC, RawTable
from q2c.sources.raw_table import columns as _cols

_ENGAGEMENT_COMMON = (
    f"engagement_id type property_hs_createdate property_hs_timestamp "
    f"property_hubspot_owner_id _fivetran_deleted {SYNC}"
)


def _association(name: str, key: tuple[str, ...], extra: str = "") -> RawTable:
    """An association table: one row per link between two objects."""
    return RawTable("hubspot", name, key, _cols(f"{' '.join(key)} {extra} category {SYNC}"))


TABLES = (
    RawTable(
        "hubspot", "company", ("id",),
        _cols(f"""id portal_id property_name property_type property_industry
        property_domain property_website property_phone property_address property_address_2
        property_city property_zip property_state property_country property_hubspot_owner_id
        property_hs_parent_company_id property_vat_number property_preferred_language
        property_segment property_invoice_delivery_channel property_einvoice_format
        property_peppol_participant_id property_x12_partner property_createdate
        property_hs_lastmodifieddate is_deleted _fivetran_deleted {SYNC}"""),
        "is_deleted",
    ),
    RawTable(
        "hubspot", "contact", ("id",),
        _cols(f"""id property_associatedcompanyid property_firstname property_lastname
        property_email property_jobtitle property_phone property_country
        property_billing_contact property_hs_email_optout property_createdate
        property_lastmodifieddate _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
    ),
    RawTable(
        "hubspot", "owner", ("owner_id",),
        _cols(f"""owner_id email first_name last_name type active_user_id portal_id
        created_at updated_at {SYNC}"""),
    ),
    RawTable(
        "hubspot", "deal", ("deal_id",),
        _cols(f"""deal_id portal_id deal_pipeline_id deal_pipeline_stage_id owner_id
        property_dealname property_description property_dealtype property_amount
        property_deal_currency_code property_closedate property_hs_is_closed
        property_hs_is_closed_won property_createdate property_hs_lastmodifieddate
        is_deleted _fivetran_deleted {SYNC}"""),
        "is_deleted",
    ),
    _association("deal_company", ("deal_id", "company_id", "type_id")),
    _association("deal_contact", ("deal_id", "contact_id", "type_id")),
    RawTable(
        "hubspot", "deal_pipeline_stage", ("stage_id",),
        _cols(f"""stage_id pipeline_id label display_order probability is_closed closed_won
        active created_at updated_at _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
    ),
    RawTable(
        "hubspot", "line_item", ("id",),
        _cols(f"""id product_id property_hs_product_id property_name property_description
        property_hs_sku property_quantity property_price property_amount property_discount
        property_hs_discount_percentage property_hs_line_item_currency_code
        property_createdate property_hs_lastmodifieddate _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
    ),
    _association("line_item_deal", ("line_item_id", "deal_id"), "type_id"),
    RawTable(
        "hubspot", "engagement", ("id",),
        _cols(f"id type portal_id owner_id created_at timestamp {SYNC}"),
    ),
    _association("engagement_company", ("engagement_id", "company_id"),
                 "engagement_type type_id"),
    _association("engagement_contact", ("engagement_id", "contact_id"),
                 "engagement_type type_id"),
    RawTable(
        "hubspot", "engagement_call", ("engagement_id",),
        _cols(f"""{_ENGAGEMENT_COMMON} property_hs_call_title property_hs_call_status
        property_hs_call_direction"""),
        "_fivetran_deleted",
    ),
    RawTable(
        "hubspot", "engagement_email", ("engagement_id",),
        _cols(f"""{_ENGAGEMENT_COMMON} property_hs_email_subject property_hs_email_status
        property_hs_email_direction"""),
        "_fivetran_deleted",
    ),
    RawTable(
        "hubspot", "engagement_meeting", ("engagement_id",),
        _cols(f"""{_ENGAGEMENT_COMMON} property_hs_meeting_title property_hs_meeting_outcome
        property_hs_meeting_start_time title meeting_outcome start_time"""),
        "_fivetran_deleted",
    ),
    RawTable(
        "hubspot", "engagement_note", ("engagement_id",),
        _cols(f"{_ENGAGEMENT_COMMON} property_hs_body_preview"),
        "_fivetran_deleted",
    ),
    RawTable(
        "hubspot", "engagement_task", ("engagement_id",),
        _cols(f"""{_ENGAGEMENT_COMMON} property_hs_task_subject property_hs_task_status
        property_hs_task_priority property_hs_task_type"""),
        "_fivetran_deleted",
    ),
    RawTable(
        "hubspot", "ticket", ("id",),
        _cols(f"""id portal_id property_subject property_content property_hs_pipeline
        property_hs_pipeline_stage property_hs_ticket_category property_hs_ticket_priority
        property_source_type property_hubspot_owner_id property_invoice_number
        property_createdate property_closed_date property_hs_lastmodifieddate is_deleted
        _fivetran_deleted {SYNC}"""),
        "is_deleted",
    ),
    _association("ticket_company", ("ticket_id", "company_id")),
    _association("ticket_contact", ("ticket_id", "contact_id")),
    _association("ticket_engagement", ("ticket_id", "engagement_id")),
    RawTable(
        "hubspot", "ticket_pipeline", ("pipeline_id",),
        _cols(f"""pipeline_id label display_order active object_type_id created_at updated_at
        _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
    ),
    # Stage ids repeat across ticket pipelines, so a stage is known by both ids (as
    # Fivetran's own HubSpot package joins them).
    RawTable(
        "hubspot", "ticket_pipeline_stage", ("pipeline_id", "stage_id"),
        _cols(f"""pipeline_id stage_id label display_order is_closed ticket_state active
        created_at updated_at _fivetran_deleted {SYNC}"""),
        "_fivetran_deleted",
    ),
)
