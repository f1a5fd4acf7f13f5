"""Pull connectors against local servers that speak each provider's API.

Counts are from the servers' records (tests/provider_servers.py): HubSpot 5 companies,
3 contacts, 3 deals, 2 line items, 2 tickets; Salesforce eBikes 3 accounts, 1 case,
1 opportunity, 16 products; Stripe 5 customers, 3 invoices of 3 lines each; QuickBooks
3 customers, 4 invoices of 3 lines and 1 tax line each. Servers page by 2.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from provider_servers import (
    REALM,
    HubSpotServer,
    ProviderServer,
    QuickBooksServer,
    SalesforceServer,
    StripeServer,
    running,
)

from q2c.sources.connectors import (
    AuthError,
    ConfigurationError,
    CursorStore,
    HubSpotConnector,
    ProviderError,
    QuickBooksConnector,
    SalesforceConnector,
    StripeConnector,
)
from q2c.sources.connectors.http import HttpClient, RetryPolicy, retry_after_seconds
from q2c.sources.connectors.landing_writer import LandingWriter, TableBatch, table_shape
from q2c.sources.connectors.rate_limit import RateLimiter
from q2c.sources.landing import load_source
from q2c.warehouse import connect


class Sleeps(list):
    """Stands in for time.sleep: records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@dataclass
class Harness:
    """One provider: its server, a connector pointed at it, and where things land."""

    server: ProviderServer
    make: Callable[..., object]
    landing: Path
    cursors: CursorStore
    sleeps: Sleeps

    def connector(self, token: str | None = None):
        return self.make(self, token or self.server.token)

    def rows(self, source: str, table: str) -> list[dict]:
        with (self.landing / source / f"{table}.csv").open(newline="") as handle:
            return list(csv.DictReader(handle))


def _client_options(h: Harness) -> dict:
    return {"limiter": RateLimiter(1000, 1000), "sleep": h.sleeps,
            "retry": RetryPolicy(max_attempts=4, base_delay=0.5)}


def _hubspot(h: Harness, token: str):
    env = {"Q2C_HUBSPOT_TOKEN": token, "Q2C_HUBSPOT_URL": h.server.url}
    return HubSpotConnector.from_env(h.landing, h.cursors, env=env, page_size=2,
                                     **_client_options(h))


def _salesforce(h: Harness, token: str):
    env = {"Q2C_SALESFORCE_TOKEN": token, "Q2C_SALESFORCE_INSTANCE_URL": h.server.url}
    return SalesforceConnector.from_env(
        h.landing, h.cursors, env=env, objects=["Account", "Case", "Opportunity", "Product__c"],
        **_client_options(h))


def _stripe(h: Harness, token: str):
    env = {"Q2C_STRIPE_API_KEY": token, "Q2C_STRIPE_URL": h.server.url,
           "Q2C_STRIPE_VERSION": "2024-06-20"}
    return StripeConnector.from_env(h.landing, h.cursors, env=env, page_size=2,
                                    **_client_options(h))


def _quickbooks(h: Harness, token: str):
    env = {"Q2C_QUICKBOOKS_TOKEN": token, "Q2C_QUICKBOOKS_URL": h.server.url,
           "Q2C_QUICKBOOKS_REALM_ID": REALM}
    return QuickBooksConnector.from_env(h.landing, h.cursors, env=env, page_size=2,
                                        **_client_options(h))


PROVIDERS = {
    "hubspot": (HubSpotServer, _hubspot),
    "salesforce": (SalesforceServer, _salesforce),
    "stripe": (StripeServer, _stripe),
    "quickbooks": (QuickBooksServer, _quickbooks),
}


def _harness(name: str, tmp_path: Path):
    server_class, make = PROVIDERS[name]
    for server in running(server_class()):
        yield Harness(server, make, tmp_path / "landing", CursorStore(tmp_path / "ops.sqlite"),
                      Sleeps())


@pytest.fixture
def hubspot(tmp_path):
    yield from _harness("hubspot", tmp_path)


@pytest.fixture
def salesforce(tmp_path):
    yield from _harness("salesforce", tmp_path)


@pytest.fixture
def stripe(tmp_path):
    yield from _harness("stripe", tmp_path)


@pytest.fixture
def quickbooks(tmp_path):
    yield from _harness("quickbooks", tmp_path)


@pytest.fixture(params=list(PROVIDERS))
def provider(request, tmp_path):
    yield from _harness(request.param, tmp_path)


# What each provider's first stream pulls, the path its pages come from, the records it
# holds, and the variable a person sets when the token is refused.
FIRST_STREAM = {
    "hubspot": ("company", "/crm/v3/objects/companies", 5, "Q2C_HUBSPOT_TOKEN"),
    "salesforce": ("account", "/services/data/v61.0/query", 3, "Q2C_SALESFORCE_TOKEN"),
    "stripe": ("customer", "/v1/customers", 5, "Q2C_STRIPE_API_KEY"),
    "quickbooks": ("customer", f"/v3/company/{REALM}/query", 3, "Q2C_QUICKBOOKS_TOKEN"),
}


def _name(h: Harness) -> str:
    return next(n for n, (cls, _) in PROVIDERS.items() if isinstance(h.server, cls))


# HubSpot


def test_hubspot_full_pull_lands_objects_and_associations_in_fivetran_columns(hubspot):
    report = hubspot.connector().pull()

    companies = hubspot.rows("hubspot", "company")
    assert [c["id"] for c in companies] == ["5001", "5002", "5003", "5004", "5005"]
    assert companies[3]["property_name"] == "Velo Berlin GmbH"
    assert {c["is_deleted"] for c in companies} == {"false"}
    assert {c["_fivetran_deleted"] for c in companies} == {"false"}
    deal = next(d for d in hubspot.rows("hubspot", "deal") if d["deal_id"] == "9002")
    assert deal["property_amount"] == "1250.50"
    assert deal["deal_pipeline_stage_id"] == "contractsent"
    assert deal["owner_id"] == "302"
    assert deal["property_closedate"] == "2026-04-15 00:00:00"
    assert deal["property_hs_lastmodifieddate"] == "2026-03-02 09:02:00"
    links = {(r["deal_id"], r["company_id"], r["type_id"], r["category"])
             for r in hubspot.rows("hubspot", "deal_company")}
    assert links == {("9001", "5003", "5", "HUBSPOT_DEFINED"),
                     ("9002", "5004", "5", "HUBSPOT_DEFINED"),
                     ("9003", "5004", "5", "HUBSPOT_DEFINED")}
    assert [(r["line_item_id"], r["deal_id"]) for r in hubspot.rows("hubspot",
                                                                     "line_item_deal")] == [
        ("8001", "9001"), ("8002", "9002")]
    # 5 companies at 2 a page: 3 list pages, each followed by `after`.
    pages = hubspot.server.data_requests("/crm/v3/objects/companies")
    assert [p.query.get("after") for p in pages] == [None, "2", "4"]
    assert report.records("company") == 5
    assert report.files["ticket_contact"] == 1
    stages = {s["stage_id"]: s for s in hubspot.rows("hubspot", "deal_pipeline_stage")}
    assert {k: (s["is_closed"], s["closed_won"]) for k, s in stages.items()} == {
        "appointmentscheduled": ("false", "false"), "contractsent": ("false", "false"),
        "closedwon": ("true", "true"), "closedlost": ("true", "false")}
    assert [(s["stage_id"], s["is_closed"]) for s in hubspot.rows(
        "hubspot", "ticket_pipeline_stage")] == [("1", "false"), ("2", "false"), ("4", "true")]
    owners = hubspot.rows("hubspot", "owner")
    assert [(o["owner_id"], o["email"]) for o in owners][:2] == [
        ("301", "kim@northwind.example"), ("302", "lee@northwind.example")]
    assert len(owners) == 3


def test_hubspot_incremental_pull_searches_from_the_cursor_and_lands_only_changes(hubspot):
    hubspot.connector().pull(["company"])
    hubspot.server.requests.clear()
    hubspot.server.modify("companies", "5002", dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC),
                          name="Northern Trail Cycling Co.")
    hubspot.server.modify("companies", "5006", dt.datetime(2026, 3, 4, 11, 0, tzinfo=dt.UTC),
                          name="Fahrradhaus Wien")

    report = hubspot.connector().pull(["company"])

    assert report.records("company") == 2
    searches = hubspot.server.data_requests("/search")
    assert all(r.path.endswith("/search")
               for r in hubspot.server.data_requests("/crm/v3/objects/companies"))
    # The mark after the full pull is company 5005's modification, 2026-03-02 09:05 UTC.
    rule = searches[0].body["filterGroups"][0]["filters"][0]
    since = dt.datetime(2026, 3, 2, 9, 5, tzinfo=dt.UTC)
    assert rule == {"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                    "value": str(int(since.timestamp() * 1000))}
    companies = {c["id"]: c for c in hubspot.rows("hubspot", "company")}
    assert len(companies) == 6
    assert companies["5002"]["property_name"] == "Northern Trail Cycling Co."
    assert companies["5006"]["property_name"] == "Fahrradhaus Wien"


def test_hubspot_contacts_search_on_their_own_modified_property(hubspot):
    hubspot.connector().pull(["contact"])
    hubspot.server.modify("contacts", "7001", dt.datetime(2026, 3, 5, tzinfo=dt.UTC),
                          jobtitle="Head of AR")

    report = hubspot.connector().pull(["contact"])

    rule = hubspot.server.data_requests("/contacts/search")[0].body["filterGroups"][0]
    assert rule["filters"][0]["propertyName"] == "lastmodifieddate"
    assert report.records("contact") == 1
    contact = next(c for c in hubspot.rows("hubspot", "contact") if c["id"] == "7001")
    assert contact["property_jobtitle"] == "Head of AR"


def test_hubspot_portal_with_many_properties_is_read_through_search(hubspot, monkeypatch):
    monkeypatch.setattr("q2c.sources.connectors.hubspot.LIST_PROPERTIES_LIMIT", 10)

    report = hubspot.connector().pull(["company"])

    assert not [r for r in hubspot.server.data_requests("/crm/v3/objects/companies")
                if not r.path.endswith("/search")]
    first = hubspot.server.data_requests("/search")[0].body
    assert first["filterGroups"][0]["filters"][0]["value"] == "0"
    # 5002 and 5003 share a modification time across the first page boundary.
    assert report.records("company") == 5
    ids = [c["id"] for c in hubspot.rows("hubspot", "company")]
    assert sorted(ids) == ["5001", "5002", "5003", "5004", "5005"]


def test_hubspot_list_resumes_after_its_last_committed_page(hubspot):
    hubspot.server.fail(400, match="/crm/v3/objects/companies", skip=1,
                        body={"status": "error", "category": "VALIDATION_ERROR",
                              "message": "Invalid input"})
    with pytest.raises(ProviderError, match="HubSpot rejected GET /crm/v3/objects/companies"):
        hubspot.connector().pull(["company"])
    assert [c["id"] for c in hubspot.rows("hubspot", "company")] == ["5001", "5002"]
    assert hubspot.cursors.get("hubspot", "company")["pending"]["after"] == "2"
    hubspot.server.requests.clear()

    hubspot.connector().pull(["company"])

    pages = hubspot.server.data_requests("/crm/v3/objects/companies")
    assert [p.query.get("after") for p in pages] == ["2", "4"]
    ids = [c["id"] for c in hubspot.rows("hubspot", "company")]
    assert ids == ["5001", "5002", "5003", "5004", "5005"]
    assert hubspot.cursors.get("hubspot", "company")["high_water"] == (
        "2026-03-02T09:05:00.000000Z")


# Salesforce


def test_salesforce_full_pull_selects_every_plain_field_and_follows_the_locator(salesforce):
    salesforce.connector().pull()

    accounts = salesforce.rows("salesforce", "account")
    assert [a["name"] for a in accounts] == ["Wheelworks", "Northern Trail Cycling",
                                             "Trailblazers"]
    assert accounts[2]["billing_city"] == "New York"
    assert accounts[2]["billing_postal_code"] == "10036"
    assert accounts[0]["last_modified_date"] == "2026-02-10 08:01:00"
    assert {a["is_deleted"] for a in accounts} == {"false"}
    case = salesforce.rows("salesforce", "case")[0]
    assert case["account_id"] == accounts[2]["id"]
    assert case["case_number"] == "00001029"
    opportunity = salesforce.rows("salesforce", "opportunity")[0]
    assert opportunity["amount"] == "23000"
    products = salesforce.rows("salesforce", "product_c")
    assert len(products) == 16
    assert products[0]["msrp_c"] == "2500"
    query = salesforce.server.data_requests("/queryAll")[0].query["q"]
    assert query.startswith("SELECT ") and "BillingAddress" not in query
    # Pages of 2 follow `nextRecordsUrl`: 1 more page of accounts, 7 more of products.
    assert len(salesforce.server.data_requests("/query/01g")) == 1 + 7


def test_salesforce_incremental_pull_queries_from_the_mark_and_lands_deletions(salesforce):
    connector = salesforce.connector()
    connector.pull(["account"])
    salesforce.server.requests.clear()
    accounts = salesforce.server.objects["Account"]
    salesforce.server.modify("Account", accounts[0]["Id"],
                             dt.datetime(2026, 2, 11, 9, 30, tzinfo=dt.UTC), Phone="+1 617 555")
    salesforce.server.modify("Account", accounts[1]["Id"],
                             dt.datetime(2026, 2, 11, 9, 31, tzinfo=dt.UTC), IsDeleted=True)

    report = salesforce.connector().pull(["account"])

    query = salesforce.server.data_requests("/queryAll")[0].query["q"]
    assert query.endswith("FROM Account WHERE LastModifiedDate >= 2026-02-10T08:03:00Z "
                          "ORDER BY LastModifiedDate ASC, Id ASC")
    assert report.records("account") == 2
    landed = {a["id"]: a for a in salesforce.rows("salesforce", "account")}
    assert len(landed) == 3
    assert landed[accounts[0]["Id"]]["phone"] == "+1 617 555"
    assert landed[accounts[1]["Id"]]["is_deleted"] == "true"


def test_salesforce_resume_keeps_records_sharing_the_marks_timestamp(salesforce):
    # Products 2 and 3 were modified in the same second; the failure comes right after the
    # page ending with product 2, so a `>` filter would lose product 3.
    salesforce.server.fail(503, match="/query/01g", times=4)
    with pytest.raises(Exception, match="gave up after 4 attempts"):
        salesforce.connector().pull(["product_c"])
    assert len(salesforce.rows("salesforce", "product_c")) == 2
    state = salesforce.cursors.get("salesforce", "product_c")
    assert state["high_water"] == "2026-02-10T08:02:00.000000Z"
    salesforce.server.requests.clear()

    report = salesforce.connector().pull(["product_c"])

    query = salesforce.server.data_requests("/queryAll")[0].query["q"]
    assert "WHERE LastModifiedDate >= 2026-02-10T08:02:00Z" in query
    assert report.records("product_c") == 14
    ids = [p["id"] for p in salesforce.rows("salesforce", "product_c")]
    assert len(ids) == len(set(ids)) == 16


# Stripe


def test_stripe_full_pull_flattens_like_fivetran_and_pages_invoice_lines(stripe):
    stripe.connector().pull()

    invoices = {i["id"]: i for i in stripe.rows("stripe", "invoice")}
    invoice = invoices["in_Q2cINV00001"]
    assert invoice["customer_id"] == "cus_Q2cCUS00001"
    assert invoice["created"] == "2026-01-01 11:00:00"
    assert invoice["amount_due"] == "1000"
    assert invoice["currency"] == "usd"
    assert invoice["is_deleted"] == "false"
    lines = [r for r in stripe.rows("stripe", "invoice_line_item")
             if r["invoice_id"] == "in_Q2cINV00001"]
    assert [line["amount"] for line in lines] == ["1000", "2000", "3000"]
    assert lines[0]["period_start"] == "2024-07-26 00:34:14"
    # Two lines come embedded; the third from each invoice's lines list.
    assert len(stripe.server.data_requests("/lines")) == 3
    customer = next(c for c in stripe.rows("stripe", "customer") if c["id"] == "cus_Q2cCUS00001")
    assert customer["address_line_1"] == ""
    assert customer["metadata"] == "{}"
    charge = next(c for c in stripe.rows("stripe", "charge") if c["id"] == "ch_Q2cCHA00001")
    assert charge["balance_transaction_id"] == "txn_Q2cBAL00001"
    assert len(stripe.rows("stripe", "credit_note_line_item")) == 2
    payout = stripe.rows("stripe", "payout")[0]
    assert payout["destination_bank_account_id"] == "ba_1Pgc79B7WZ01zgkWoU5vBiXt"
    assert {r.headers["Stripe-Version"] for r in stripe.server.requests} == {"2024-06-20"}


def test_stripe_incremental_pull_filters_created_gte_and_skips_the_boundary(stripe):
    stripe.connector().pull(["customer"])
    stripe.server.requests.clear()
    stripe.server.add("customer", 1767261600 + 3600 * 9, id="cus_Q2cCUS00006",
                      name="Late Customer")

    report = stripe.connector().pull(["customer"])

    first = stripe.server.data_requests("/v1/customers")[0]
    # The newest customer landed so far was created at 2026-01-01 15:00:00 UTC.
    assert first.query["created[gte]"] == str(1767261600 + 3600 * 5)
    assert "starting_after" not in first.query
    assert report.records("customer") == 1
    customers = stripe.rows("stripe", "customer")
    assert len(customers) == 6
    assert next(c for c in customers if c["id"] == "cus_Q2cCUS00006")["name"] == "Late Customer"


def test_stripe_resumes_after_the_last_id_it_landed(stripe):
    stripe.server.fail(400, match="/v1/customers", skip=1)
    with pytest.raises(ProviderError, match="Stripe rejected GET /v1/customers"):
        stripe.connector().pull(["customer"])
    state = stripe.cursors.get("stripe", "customer")
    assert state["high_water"] is None
    assert state["pending"]["starting_after"] == "cus_Q2cCUS00004"
    stripe.server.requests.clear()

    stripe.connector().pull(["customer"])

    first = stripe.server.data_requests("/v1/customers")[0]
    assert first.query["starting_after"] == "cus_Q2cCUS00004"
    ids = sorted(c["id"] for c in stripe.rows("stripe", "customer"))
    assert ids == [f"cus_Q2cCUS0000{n}" for n in range(1, 6)]
    assert stripe.cursors.get("stripe", "customer")["high_water"] == (
        "2026-01-01T15:00:00.000000Z")


# QuickBooks


def test_quickbooks_full_pull_lands_entities_lines_tax_lines_and_addresses(quickbooks):
    quickbooks.connector().pull()

    invoice = next(i for i in quickbooks.rows("quickbooks", "invoice") if i["id"] == "1001")
    assert invoice["doc_number"] == "INV-1001"
    assert invoice["customer_id"] == "58"
    assert invoice["currency_id"] == "USD"
    assert invoice["transaction_date"] == "2026-01-19"
    assert invoice["total_amount"] == "879.75"
    assert invoice["total_tax"] == "51.75"
    assert invoice["billing_email"] == "ap@wheelworks.example"
    assert invoice["billing_address_id"] == "94"
    assert invoice["customer_memo"] == "Thank you!"
    assert invoice["custom_salesforce_opportunity_id"] == "0065g0000001AAA"
    assert invoice["updated_at"] == "2026-01-20 17:05:00"
    assert invoice["_fivetran_deleted"] == "false"
    lines = [r for r in quickbooks.rows("quickbooks", "invoice_line")
             if r["invoice_id"] == "1001"]
    assert [(r["index"], r["detail_type"]) for r in lines] == [
        ("0", "SalesItemLineDetail"), ("1", "DiscountLineDetail"), ("2", "SubTotalLineDetail")]
    assert (lines[0]["sales_item_item_id"], lines[0]["sales_item_quantity"],
            lines[0]["sales_item_unit_price"]) == ("11", "2", "460")
    assert lines[1]["discount_discount_percent"] == "10"
    tax = [r for r in quickbooks.rows("quickbooks", "invoice_tax_line")
           if r["invoice_id"] == "1001"]
    assert [(r["amount"], r["tax_percent"], r["tax_rate_id"], r["net_amount_taxable"])
            for r in tax] == [("51.75", "6.25", "3", "828")]
    customers = {c["id"]: c for c in quickbooks.rows("quickbooks", "customer")}
    assert customers["60"]["parent_customer_id"] == "59"
    assert customers["58"]["email"] == "ap@wheelworks.example"
    assert customers["58"]["bill_address_id"] == "94"
    assert {a["id"]: a["city"] for a in quickbooks.rows("quickbooks", "address")} == {
        "94": "Belmont", "95": "New York"}
    payment_line = quickbooks.rows("quickbooks", "payment_line")[0]
    assert (payment_line["payment_id"], payment_line["invoice_id"]) == ("2001", "1001")


def test_quickbooks_incremental_pull_replaces_the_lines_of_a_changed_invoice(quickbooks):
    quickbooks.connector().pull(["invoice"])
    quickbooks.server.requests.clear()
    changed = quickbooks.server.entities["Invoice"][1]
    quickbooks.server.modify("Invoice", "1002", dt.datetime(2026, 1, 22, 8, 0, tzinfo=dt.UTC),
                             Line=changed["Line"][:1])

    report = quickbooks.connector().pull(["invoice"])

    statement = quickbooks.server.data_requests("/query")[0].query["query"]
    assert statement == (
        "select * from Invoice where Metadata.LastUpdatedTime >= '2026-01-20T17:08:00+00:00' "
        "orderby Metadata.LastUpdatedTime startposition 1 maxresults 2")
    assert report.records("invoice") == 1
    lines = [r["invoice_id"] for r in quickbooks.rows("quickbooks", "invoice_line")]
    assert lines.count("1002") == 1
    assert len(lines) == 10


def test_quickbooks_resume_lands_the_rest_without_duplicates(quickbooks):
    # Invoices 1002 and 1003 share a LastUpdatedTime; the first page ends with 1002.
    quickbooks.server.fail(500, match="/query", skip=1, times=4)
    with pytest.raises(Exception, match="gave up after 4 attempts"):
        quickbooks.connector().pull(["invoice"])
    assert [i["id"] for i in quickbooks.rows("quickbooks", "invoice")] == ["1001", "1002"]
    quickbooks.server.requests.clear()

    report = quickbooks.connector().pull(["invoice"])

    statement = quickbooks.server.data_requests("/query")[0].query["query"]
    assert ">= '2026-01-20T17:06:00+00:00'" in statement
    assert report.records("invoice") == 2
    ids = [i["id"] for i in quickbooks.rows("quickbooks", "invoice")]
    assert ids == ["1001", "1002", "1003", "1004"]
    keys = [(r["invoice_id"], r["index"]) for r in quickbooks.rows("quickbooks",
                                                                   "invoice_line")]
    assert len(keys) == len(set(keys)) == 12


def test_quickbooks_query_fault_is_reported_with_its_code(quickbooks):
    quickbooks.server.fail(400, match="/query", body={"Fault": {"Error": [{
        "Message": "Error parsing query", "Detail": "QueryParserError: Encountered \"from\"",
        "code": "4000"}], "type": "ValidationFault"}, "time": "2026-01-21T09:00:00.000-08:00"})
    with pytest.raises(ProviderError, match="ValidationFault: 4000 Error parsing query"):
        quickbooks.connector().pull(["customer"])


# every provider alike


def test_429_waits_as_long_as_retry_after_says_then_succeeds(provider):
    stream, path, count, _ = FIRST_STREAM[_name(provider)]
    provider.server.fail(429, match=path, retry_after="1")

    report = provider.connector().pull([stream])

    assert provider.sleeps == [1.0]
    assert report.records(stream) == count


def test_5xx_is_retried_with_growing_jittered_backoff(provider):
    stream, path, count, _ = FIRST_STREAM[_name(provider)]
    provider.server.fail(500, match=path, times=2)

    report = provider.connector().pull([stream])

    assert report.records(stream) == count
    first, second = provider.sleeps
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0


def test_401_stops_with_the_provider_and_the_variable_to_set(provider, caplog):
    stream, _, _, variable = FIRST_STREAM[_name(provider)]
    wrong = "wrong-token-1234567890"
    caplog.set_level(logging.DEBUG)

    with pytest.raises(AuthError) as raised:
        provider.connector(token=wrong).pull([stream])

    message = str(raised.value)
    assert "refused the credentials" in message and "HTTP 401" in message
    assert variable in message
    assert raised.value.provider in message
    assert wrong not in message and wrong not in caplog.text
    assert provider.sleeps == []


def test_landed_files_load_with_the_ingest_step(provider, tmp_path):
    name = _name(provider)
    provider.connector().pull()

    with connect(tmp_path / "warehouse.duckdb") as conn:
        loads = {load.table.name: load for load in load_source(conn, provider.landing, name,
                                                               "run-1")}
        table, _, count, _ = FIRST_STREAM[name]
        loaded = conn.sql(f'select count(*) from raw_{name}."{table}"').fetchone()[0]
        quarantined = conn.sql("select count(*) from q2c_ops.quarantine").fetchone()[0]

    assert loaded == count
    assert loads[table].status == "loaded"
    assert quarantined == 0


def test_a_missing_token_names_the_variable(tmp_path):
    with pytest.raises(ConfigurationError, match="set Q2C_STRIPE_API_KEY"):
        StripeConnector.from_env(tmp_path, CursorStore(tmp_path / "ops.sqlite"), env={})


# client parts


def test_retry_after_reads_seconds_and_http_dates():
    now = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Sun, 01 Mar 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Sun, 01 Mar 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None


def test_rate_limiter_spaces_requests_beyond_the_burst():
    clock = [0.0]
    waits = Sleeps()

    def sleep(seconds: float) -> None:
        waits(seconds)
        clock[0] += seconds

    limiter = RateLimiter(rate=2, burst=2, clock=lambda: clock[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()

    assert waits == [0.5, 0.5, 0.5]


def test_a_wait_longer_than_allowed_stops_the_pull_with_the_wait(stripe):
    stripe.server.fail(429, match="/v1/customers", retry_after="3600")
    with pytest.raises(Exception, match="asks to wait 3600 s"):
        stripe.connector().pull(["customer"])
    assert stripe.sleeps == []


def test_merging_a_part_again_after_a_crash_changes_nothing(tmp_path):
    writer = LandingWriter(tmp_path, "quickbooks")
    lines = table_shape("quickbooks", "invoice_line")
    writer.write_page([TableBatch(lines, [
        {"invoice_id": "1", "index": "0", "amount": "10"},
        {"invoice_id": "1", "index": "1", "amount": "20"},
        {"invoice_id": "2", "index": "0", "amount": "5"},
    ])])
    writer.merge()
    part = writer.write_page([TableBatch(lines, [{"invoice_id": "1", "index": "0",
                                                  "amount": "12"}],
                                         replace_column="invoice_id", replace_ids=["1"])])
    kept = part.read_bytes()
    writer.merge()
    once = (tmp_path / "quickbooks" / "invoice_line.csv").read_text()
    part.write_bytes(kept)

    writer.merge()

    assert (tmp_path / "quickbooks" / "invoice_line.csv").read_text() == once
    with (tmp_path / "quickbooks" / "invoice_line.csv").open(newline="") as handle:
        rows = [(r["invoice_id"], r["index"], r["amount"]) for r in csv.DictReader(handle)]
    assert sorted(rows) == [("1", "0", "12"), ("2", "0", "5")]


# paging that does not advance


def test_stripe_stops_when_starting_after_never_advances(stripe):
    stuck = {"object": "list", "url": "/v1/customers", "has_more": True,
             "data": [{"id": "cus_Stuck01", "object": "customer", "created": 1767261600}]}
    stripe.server.answer(stuck, match="/v1/customers", times=50)

    with pytest.raises(ProviderError) as raised:
        stripe.connector().pull(["customer"])

    message = str(raised.value)
    assert "Stripe: stream customer: the provider answered the starting_after " \
        "'cus_Stuck01' a second time" in message
    assert len(stripe.server.data_requests("/v1/customers")) == 2
    assert [c["id"] for c in stripe.rows("stripe", "customer")] == ["cus_Stuck01"]


def test_hubspot_stops_when_after_never_advances(hubspot):
    stuck = {"results": [{"id": "5001", "archived": False, "properties": {
        "name": "Wheelworks", "hs_lastmodifieddate": "2026-03-02T09:01:00.000Z"}}],
        "paging": {"next": {"after": "STUCK"}}}
    hubspot.server.answer(stuck, match="/crm/v3/objects/companies", times=50)

    with pytest.raises(ProviderError) as raised:
        hubspot.connector().pull(["company"])

    assert "HubSpot: stream company: the provider answered the paging cursor `after` " \
        "'STUCK' a second time" in str(raised.value)
    assert len(hubspot.server.data_requests("/crm/v3/objects/companies")) == 2


def test_salesforce_stops_when_next_records_url_repeats(salesforce):
    locator = "/services/data/v61.0/query/01gSTUCK-2"
    stuck = {"totalSize": 9, "done": False, "nextRecordsUrl": locator, "records": [
        {"attributes": {"type": "Account"}, "Id": "0015g00000StuckAAA", "Name": "Wheelworks",
         "LastModifiedDate": "2026-02-10T08:01:00.000+0000"}]}
    salesforce.server.answer(stuck, match="/query", times=50)

    with pytest.raises(ProviderError) as raised:
        salesforce.connector().pull(["account"])

    assert f"Salesforce: stream account: the provider answered the nextRecordsUrl " \
        f"'{locator}' a second time" in str(raised.value)
    assert len(salesforce.server.data_requests("/query")) == 2


def test_quickbooks_stops_when_startposition_answers_the_same_page(quickbooks):
    page = quickbooks.server.entities["Customer"][:2]
    quickbooks.server.answer({"QueryResponse": {"Customer": page, "startPosition": 1,
                                                "maxResults": 2}}, match="/query", times=50)

    with pytest.raises(ProviderError) as raised:
        quickbooks.connector().pull(["customer"])

    # Page 1 lands both; read again from the new mark (nothing new), STARTPOSITION moves to
    # 3, and the same two customers come back.
    assert "QuickBooks Online: stream customer: STARTPOSITION 3 answered the same entities " \
        "(Id 58, 59) as STARTPOSITION 1" in str(raised.value)
    positions = [r.query["query"].split("startposition ")[1].split()[0]
                 for r in quickbooks.server.data_requests("/query")]
    assert positions == ["1", "1", "3"]


# pages of the wrong shape


def test_a_page_that_is_a_json_array_stops_with_provider_and_stream(stripe):
    stripe.server.answer([], match="/v1/customers")

    with pytest.raises(ProviderError, match="Stripe: stream customer: GET /v1/customers "
                                            "answered a JSON array where a JSON object belongs"):
        stripe.connector().pull(["customer"])


# A page whose one record lacks its id, in each provider's shape.
NO_ID = {
    "hubspot": ("/crm/v3/objects/companies", "company", "id", {"results": [
        {"properties": {"name": "x", "hs_lastmodifieddate": "2026-03-02T09:01:00Z"}}]}),
    "salesforce": ("/queryAll", "account", "Id", {"done": True, "totalSize": 1, "records": [
        {"Name": "x", "LastModifiedDate": "2026-02-10T08:01:00.000+0000"}]}),
    "stripe": ("/v1/customers", "customer", "id", {"object": "list", "has_more": False,
                                                   "data": [{"object": "customer"}]}),
    "quickbooks": ("/query", "customer", "Id", {"QueryResponse": {"Customer": [
        {"DisplayName": "x", "MetaData": {"LastUpdatedTime": "2026-01-20T09:00:00-08:00"}}]}}),
}


def test_a_record_without_its_id_stops_with_provider_stream_and_field(provider):
    match, stream, field, body = NO_ID[_name(provider)]
    provider.server.answer(body, match=match)

    with pytest.raises(ProviderError) as raised:
        provider.connector().pull([stream])

    message = str(raised.value)
    assert message.startswith(f"{raised.value.provider}: stream {stream}: record 1 in the "
                              "answer of ")
    assert f"has no `{field}`" in message


# credentials


@pytest.mark.parametrize("name, variable", [
    ("hubspot", "Q2C_HUBSPOT_TOKEN"), ("salesforce", "Q2C_SALESFORCE_TOKEN"),
    ("stripe", "Q2C_STRIPE_API_KEY"), ("quickbooks", "Q2C_QUICKBOOKS_TOKEN"),
])
def test_a_token_with_a_line_break_is_refused_naming_the_variable_not_the_value(
    name, variable, tmp_path
):
    token = "sk_live_Hidden4242\r\nX-Injected: 1"
    env = {variable: token, "Q2C_SALESFORCE_INSTANCE_URL": "http://127.0.0.1:1",
           "Q2C_QUICKBOOKS_REALM_ID": REALM}
    connector = {"hubspot": HubSpotConnector, "salesforce": SalesforceConnector,
                 "stripe": StripeConnector, "quickbooks": QuickBooksConnector}[name]

    with pytest.raises(ConfigurationError) as raised:
        connector.from_env(tmp_path, CursorStore(tmp_path / "ops.sqlite"), env=env)

    assert f"{variable} contains a line break" in str(raised.value)
    assert "Hidden4242" not in "".join(traceback.format_exception(raised.value))


def test_a_header_that_would_split_the_request_is_refused_without_its_value():
    with pytest.raises(ConfigurationError) as raised:
        HttpClient(provider="Stripe", base_url="http://127.0.0.1:1",
                   headers={"Authorization": "Bearer Hidden4242\nX-Injected: 1"})

    assert "the Authorization header would carry a line break" in str(raised.value)
    assert "Hidden4242" not in str(raised.value)


def test_an_error_of_the_http_library_is_reported_without_its_text():
    client = HttpClient(provider="Stripe", base_url="http://127.0.0.1:99999",
                        headers={"Authorization": "Bearer Hidden4242"}, sleep=Sleeps())

    with pytest.raises(ProviderError) as raised:
        client.get("/v1/customers")

    assert str(raised.value).startswith(
        "Stripe: GET /v1/customers could not be sent (InvalidURL)")
    shown = "".join(traceback.format_exception(raised.value))
    assert "requests.exceptions" not in shown and "99999" not in shown


def test_a_token_echoed_in_another_case_or_encoded_is_masked(stripe):
    token = stripe.server.token
    stripe.server.fail(400, match="/v1/customers", body={"error": {
        "type": "invalid_request_error",
        "message": f"bad keys {token.lower()} and {quote(token.upper(), safe='')}"}})

    with pytest.raises(ProviderError) as raised:
        stripe.connector().pull(["customer"])

    assert "bad keys *** and ***" in str(raised.value)
    assert token.lower() not in str(raised.value).lower()
