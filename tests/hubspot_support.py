"""Hand-made HubSpot rows and a landing folder that holds them beside the shared exports.

Each landed file is the shared Fivetran seed as it is (same rows on the same lines) with the
fixture rows appended below, so the shared rows keep the line numbers the ingest report and
quarantine name. A fixture column the seed lacks is added at the end of the header and left
empty on the seed's rows, as ingest would land it. Tables without a shared seed (line_item,
line_item_deal) get a file of fixture rows only, in Fivetran's published column names.

Fixture ids start with `fx` so they never meet the seeds' numeric ids.
"""

from __future__ import annotations

import csv
from pathlib import Path

from q2c.sources.schema import RawTable, tables_of

SHARED_HUBSPOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fivetran-hubspot"

Row = dict[str, str]

# Companies: fx-co1 is the customer everything below hangs on; fx-co0 is a second company on
# the won deal (not its primary one); fx-co-del1 and fx-co-del2 are deleted, once by
# HubSpot's is_deleted and once by Fivetran's _fivetran_deleted.
COMPANIES: list[Row] = [
    {"id": "fx-co1", "property_name": "Alpha Tools GmbH", "property_domain": "alpha-tools.de",
     "property_country": "Germany", "property_address": "Hauptstr. 1",
     "property_address_2": "Haus B", "property_city": "Berlin", "property_zip": "10115",
     "property_hubspot_owner_id": "fx-o1", "property_hs_parent_company_id": "fx-co0",
     "property_vat_number": " DE111111111 ", "property_preferred_language": "DE",
     "property_segment": "Mid Market", "property_invoice_delivery_channel": "PEPPOL",
     "property_einvoice_format": "XRechnung", "property_peppol_participant_id": "0204:991-1",
     "property_createdate": "2020-01-02 3:04:05", "is_deleted": "false"},
    {"id": "fx-co0", "property_name": "Alpha Holding", "property_country": "DE",
     "is_deleted": "FALSE"},
    {"id": "fx-co-del1", "property_name": "Gone Ltd", "is_deleted": "true"},
    {"id": "fx-co-del2", "property_name": "Also Gone Ltd", "is_deleted": "false",
     "_fivetran_deleted": "TRUE"},
]

# Contacts: the billing rule. fx-ct1 by job title, fx-ct2 by the billing_contact property,
# fx-ct3 neither, fx-ct4 says billing in its title but the property says false (it wins).
# The fifth row has no id: ingest quarantines it.
CONTACTS: list[Row] = [
    {"id": "fx-ct1", "property_associatedcompanyid": "fx-co1", "property_firstname": "Anna",
     "property_lastname": "Alpha", "property_email": " Anna@Alpha-Tools.de ",
     "property_jobtitle": "Accounts Payable Clerk", "property_country": "Germany",
     "_fivetran_deleted": "false"},
    {"id": "fx-ct2", "property_associatedcompanyid": "fx-co1", "property_firstname": "Ben",
     "property_jobtitle": "CEO", "property_billing_contact": "true"},
    {"id": "fx-ct3", "property_associatedcompanyid": "fx-co1", "property_jobtitle": "CEO"},
    {"id": "fx-ct4", "property_associatedcompanyid": "fx-co1",
     "property_jobtitle": "Billing Manager", "property_billing_contact": "false"},
    {"id": "", "property_firstname": "Nobody"},
]

OWNERS: list[Row] = [
    {"owner_id": "fx-o1", "first_name": "Olga", "last_name": "Owner",
     "email": "Olga@Example.com", "type": "PERSON", "active_user_id": "777"},
    {"owner_id": "fx-o2", "email": "queue@example.com", "type": "QUEUE", "active_user_id": ""},
]

# Stages: won (closed, probability 1), lost (closed, 0), open (0.4).
DEAL_STAGES: list[Row] = [
    {"stage_id": "fx-won", "pipeline_id": "fx-pipe", "label": "Closed won", "is_closed": "TRUE",
     "probability": "1.0", "_fivetran_deleted": "FALSE"},
    {"stage_id": "fx-lost", "pipeline_id": "fx-pipe", "label": "Closed lost",
     "is_closed": "TRUE", "probability": "0.0", "_fivetran_deleted": "FALSE"},
    {"stage_id": "fx-open", "pipeline_id": "fx-pipe", "label": "Negotiation",
     "is_closed": "FALSE", "probability": "0.4", "_fivetran_deleted": "FALSE"},
]

# Deals: fx-d4's stage is unknown, so HubSpot's own hs_is_closed_won decides; fx-d5 is
# deleted; the last deal row is cut short and quarantined.
DEALS: list[Row] = [
    {"deal_id": "fx-d1", "deal_pipeline_stage_id": "fx-won", "owner_id": "fx-o1",
     "property_dealname": "Alpha renewal", "property_amount": "12500.50",
     "property_deal_currency_code": "eur", "property_closedate": "2021-02-15 00:00:00",
     "is_deleted": "false"},
    {"deal_id": "fx-d2", "deal_pipeline_stage_id": "fx-lost", "property_amount": "900",
     "property_deal_currency_code": "EUR", "is_deleted": "false"},
    {"deal_id": "fx-d3", "deal_pipeline_stage_id": "fx-open", "property_amount": "50",
     "property_deal_currency_code": "JPY", "is_deleted": "false"},
    {"deal_id": "fx-d4", "deal_pipeline_stage_id": "fx-elsewhere", "property_hs_is_closed": "true",
     "property_hs_is_closed_won": "true", "is_deleted": "false"},
    {"deal_id": "fx-d5", "deal_pipeline_stage_id": "fx-won", "is_deleted": "true"},
]
BROKEN_DEAL_LINE = "fx-d-broken,false\r\n"

# fx-d1 has two companies: fx-co0 has the lower id, fx-co1 is the primary (type 5).
DEAL_COMPANIES: list[Row] = [
    {"deal_id": "fx-d1", "company_id": "fx-co0", "type_id": "341", "category": "HUBSPOT_DEFINED"},
    {"deal_id": "fx-d1", "company_id": "fx-co1", "type_id": "5", "category": "HUBSPOT_DEFINED"},
]

# Line items: fx-li1 has no amount (3 x 120.50 less 10 % = 325.35 EUR); fx-li2 carries
# HubSpot's amount; fx-li3 is on the JPY deal (3 x 333 less 10 % = 899.1, 0 minor units:
# 899); fx-li4 has a unit discount (2 x (50 - 5) = 90); fx-li5 is deleted.
LINE_ITEMS: list[Row] = [
    {"id": "fx-li1", "property_name": "Widget", "property_hs_sku": "W-1",
     "property_hs_product_id": "fx-p1", "property_quantity": "3", "property_price": "120.50",
     "property_hs_discount_percentage": "10", "property_createdate": "2021-01-05 10:00:00",
     "_fivetran_deleted": "false"},
    {"id": "fx-li2", "product_id": "fx-p2", "property_name": "Support",
     "property_quantity": "1", "property_price": "199.99", "property_amount": "199.99",
     "_fivetran_deleted": "false"},
    {"id": "fx-li3", "property_name": "Widget JP", "property_quantity": "3",
     "property_price": "333", "property_hs_discount_percentage": "10",
     "_fivetran_deleted": "false"},
    {"id": "fx-li4", "property_name": "Gadget", "property_quantity": "2",
     "property_price": "50", "property_discount": "5", "_fivetran_deleted": "false"},
    {"id": "fx-li5", "property_name": "Gone", "property_quantity": "1", "property_price": "1",
     "_fivetran_deleted": "true"},
]
LINE_ITEM_DEALS: list[Row] = [
    {"line_item_id": "fx-li1", "deal_id": "fx-d1", "type_id": "20"},
    {"line_item_id": "fx-li2", "deal_id": "fx-d1", "type_id": "20"},
    {"line_item_id": "fx-li3", "deal_id": "fx-d3", "type_id": "20"},
    {"line_item_id": "fx-li4", "deal_id": "fx-d2", "type_id": "20"},
    {"line_item_id": "fx-li5", "deal_id": "fx-d2", "type_id": "20"},
]

# Ticket pipelines and stages: 'Billing' pipeline makes fx-t4 a billing ticket by itself.
TICKET_PIPELINES: list[Row] = [
    {"pipeline_id": "fx-tp-support", "label": "Support", "_fivetran_deleted": "FALSE"},
    {"pipeline_id": "fx-tp-billing", "label": "Billing", "_fivetran_deleted": "FALSE"},
]
TICKET_STAGES: list[Row] = [
    {"pipeline_id": "fx-tp-support", "stage_id": "fx-ts1", "label": "Waiting on us",
     "is_closed": "FALSE", "ticket_state": "OPEN", "_fivetran_deleted": "FALSE"},
    {"pipeline_id": "fx-tp-support", "stage_id": "fx-ts2", "label": "Closed",
     "is_closed": "TRUE", "ticket_state": "CLOSED", "_fivetran_deleted": "FALSE"},
    {"pipeline_id": "fx-tp-billing", "stage_id": "fx-ts1", "label": "New",
     "is_closed": "FALSE", "ticket_state": "OPEN", "_fivetran_deleted": "FALSE"},
]

# Tickets: fx-t1 is about invoice INV-1042 and is landed twice (the older version, first,
# is quarantined); fx-t2 disputes INV-1043; fx-t3 is no billing matter; fx-t4 is billing
# only by its pipeline; fx-t5 is deleted.
_T1 = {"id": "fx-t1", "property_hs_pipeline": "fx-tp-support",
       "property_hs_pipeline_stage": "fx-ts1", "property_hs_ticket_category": "",
       "property_hs_ticket_priority": "high", "property_source_type": "email",
       "property_hubspot_owner_id": "fx-o1", "property_createdate": "2021-02-20 09:00:00",
       "is_deleted": "FALSE"}
TICKETS: list[Row] = [
    _T1 | {"property_subject": "Question", "_fivetran_synced": "2021-02-20 09:05:00"},
    _T1 | {"property_subject": "Invoice INV-1042 charged twice",
           "property_invoice_number": "INV-1042", "_fivetran_synced": "2021-02-21 09:05:00"},
    {"id": "fx-t2", "property_hs_pipeline": "fx-tp-support",
     "property_hs_pipeline_stage": "fx-ts2", "property_hs_ticket_category": "BILLING_ISSUE",
     "property_subject": "We dispute invoice INV-1043", "property_invoice_number": "INV-1043",
     "property_closed_date": "2021-02-25 12:00:00", "is_deleted": "FALSE"},
    {"id": "fx-t3", "property_hs_pipeline": "fx-tp-support",
     "property_hs_pipeline_stage": "fx-ts1", "property_hs_ticket_category": "PRODUCT_ISSUE",
     "property_subject": "Login broken", "is_deleted": "FALSE"},
    {"id": "fx-t4", "property_hs_pipeline": "fx-tp-billing",
     "property_hs_pipeline_stage": "fx-ts1", "property_subject": "Question",
     "is_deleted": "FALSE"},
    {"id": "fx-t5", "property_subject": "Invoice copy", "is_deleted": "TRUE"},
]
TICKET_COMPANIES: list[Row] = [
    {"ticket_id": "fx-t1", "company_id": "fx-co1"},
    {"ticket_id": "fx-t2", "company_id": "fx-co1"},
]
TICKET_CONTACTS: list[Row] = [
    {"ticket_id": "fx-t1", "contact_id": "fx-ct2"},
    {"ticket_id": "fx-t1", "contact_id": "fx-ct1"},
]
TICKET_ENGAGEMENTS: list[Row] = [
    {"ticket_id": "fx-t1", "engagement_id": "fx-e1"},
    {"ticket_id": "fx-t1", "engagement_id": "fx-e2"},
]

# Engagements: fx-e1 is a v3 call whose owner is only on the parent engagement row; fx-e3 a
# meeting in the older shape (title, start_time); fx-e6 a deleted call.
ENGAGEMENTS: list[Row] = [
    {"id": "fx-e1", "type": "CALL", "owner_id": "fx-o1"},
]
ENGAGEMENT_COMPANIES: list[Row] = [
    {"engagement_id": "fx-e1", "company_id": "fx-co1", "engagement_type": "CALL"},
    {"engagement_id": "fx-e5", "company_id": "fx-co1", "engagement_type": "TASK"},
]
ENGAGEMENT_CONTACTS: list[Row] = [
    {"engagement_id": "fx-e1", "contact_id": "fx-ct1", "engagement_type": "CALL"},
]
CALLS: list[Row] = [
    {"engagement_id": "fx-e1", "type": "CALL", "property_hs_call_title": "Call about INVOICE",
     "property_hs_call_status": "completed", "property_hs_timestamp": "2021-02-21 10:30:00",
     "_fivetran_deleted": "false"},
    {"engagement_id": "fx-e6", "type": "CALL", "property_hs_call_title": "Gone",
     "_fivetran_deleted": "true"},
]
EMAILS: list[Row] = [
    {"engagement_id": "fx-e2", "type": "EMAIL", "property_hs_email_subject": "Re: your order",
     "property_hubspot_owner_id": "fx-o2", "property_hs_timestamp": "2021-02-22 08:00:00",
     "_fivetran_deleted": "false"},
]
MEETINGS: list[Row] = [
    {"engagement_id": "fx-e3", "title": "Quarterly review", "start_time": "2021-03-01 14:00:00",
     "meeting_outcome": "completed"},
]
NOTES: list[Row] = [
    {"engagement_id": "fx-e4", "type": "NOTE", "property_hs_body_preview": "Called back",
     "property_hs_createdate": "2021-02-23 08:00:00", "_fivetran_deleted": "false"},
]
TASKS: list[Row] = [
    {"engagement_id": "fx-e5", "type": "TASK", "property_hs_task_subject": "Send billing copy",
     "property_hs_task_status": "COMPLETED", "property_hs_task_type": "TODO",
     "property_hs_task_priority": "HIGH", "_fivetran_deleted": "false"},
]

FIXTURE: dict[str, list[Row]] = {
    "company": COMPANIES, "contact": CONTACTS, "owner": OWNERS, "deal": DEALS,
    "deal_company": DEAL_COMPANIES, "deal_pipeline_stage": DEAL_STAGES,
    "line_item": LINE_ITEMS, "line_item_deal": LINE_ITEM_DEALS,
    "engagement": ENGAGEMENTS, "engagement_company": ENGAGEMENT_COMPANIES,
    "engagement_contact": ENGAGEMENT_CONTACTS, "engagement_call": CALLS,
    "engagement_email": EMAILS, "engagement_meeting": MEETINGS, "engagement_note": NOTES,
    "engagement_task": TASKS, "ticket": TICKETS, "ticket_company": TICKET_COMPANIES,
    "ticket_contact": TICKET_CONTACTS, "ticket_engagement": TICKET_ENGAGEMENTS,
    "ticket_pipeline": TICKET_PIPELINES, "ticket_pipeline_stage": TICKET_STAGES,
}


def shared_file(table: RawTable) -> Path | None:
    """The shared Fivetran seed of a table, if the shared data has one."""
    return next((SHARED_HUBSPOT / name for name in table.file_names()
                 if (SHARED_HUBSPOT / name).is_file()), None)


def shared_rows(table: RawTable) -> list[Row]:
    path = shared_file(table)
    if path is None:
        return []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def write_landing(folder: Path) -> Path:
    """Write `<folder>/hubspot/` with every shared seed plus the fixture rows below it."""
    target = folder / "hubspot"
    target.mkdir(parents=True)
    for table in tables_of("hubspot"):
        fixture = FIXTURE.get(table.name, [])
        unknown = {c for row in fixture for c in row} - set(table.columns)
        if unknown:
            raise ValueError(f"fixture columns {sorted(unknown)} are not read from "
                             f"hubspot.{table.name}; add them to its RawTable")
        source = shared_file(table)
        if source is None and not fixture:
            continue
        seed = _seed_records(source)
        header = seed[0] if seed else []
        header = list(dict.fromkeys(header + [c for row in fixture for c in row]))
        path = target / (source.name if source else f"{table.name}.csv")
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(values + [""] * (len(header) - len(values)) for values in seed[1:])
            writer.writerows([row.get(c, "") for c in header] for row in fixture)
            if table.name == "deal":
                handle.write(BROKEN_DEAL_LINE)
    return target


def _seed_records(source: Path | None) -> list[list[str]]:
    """The seed's header and rows as lists of fields, one per line of the file."""
    if source is None:
        return []
    with source.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.reader(handle))
