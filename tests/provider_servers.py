"""Local stand-ins for the SaaS APIs q2c pulls from: real HTTP servers on 127.0.0.1.

Each server speaks its provider's wire format: its paths, its paging (HubSpot `after`,
Salesforce `nextRecordsUrl`, Stripe `starting_after`/`has_more`, QuickBooks `STARTPOSITION`),
its filters on the updated-at cursor, and its error bodies (HubSpot's `{"status": "error"}`,
Salesforce's list of `{"errorCode", "message"}`, Stripe's `{"error": {...}}`, QuickBooks'
`Fault`). A wrong token gets the provider's 401. Records come from the providers' published
examples: Stripe's OpenAPI fixtures and the Salesforce eBikes sObject tree in
`../shared/data`; HubSpot and QuickBooks records are built here in their documented shapes.

Tests script failures with `fail(...)`: the next matching requests get a status (429 with
`Retry-After`, 500, 401) before the server answers normally again. `answer(...)` scripts a
successful answer the same way, for a provider that misbehaves with HTTP 200 (a paging
cursor that never advances, a body of the wrong shape). Every request is kept in
`requests` (method, path, query, JSON body, headers) for assertions.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STRIPE_FIXTURES = SHARED_DATA / "stripe-openapi-fixtures" / "fixtures3.json"
EBIKES = SHARED_DATA / "salesforce-ebikes-sobject-tree"
HOST = "127.0.0.1"


@dataclass
class Fault:
    """Answer `times` requests whose path contains `match` with this status, after letting
    `skip` of them through."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    match: str = ""
    skip: int = 0
    times: int = 1


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


class LoopbackServer:
    """An HTTP server on a free loopback port, run in a thread; subclasses answer requests
    in `_handle(handler, method)`."""

    methods: tuple[str, ...] = ("GET", "POST")

    def __init__(self) -> None:
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        for method in self.methods:
            setattr(Handler, f"do_{method}",
                    lambda handler, method=method: server._handle(handler, method))
        self._httpd = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        raise NotImplementedError


def scripted_fault(faults: list, path: str) -> Any | None:
    """The first scripted fault matching `path` that is due now, counted down; None when
    the request goes through (a fault still skipping lets it pass)."""
    for fault in faults:
        if fault.times > 0 and fault.match in path:
            if fault.skip > 0:
                fault.skip -= 1
                return None
            fault.times -= 1
            return fault
    return None


class ProviderServer(LoopbackServer):
    """One provider's API on a loopback port; subclasses implement `route` and `refuse`."""

    token = "test-token-7f3a9c"

    def __init__(self, page_size: int = 2) -> None:
        super().__init__()
        self.page_size = page_size
        self.faults: list[Fault] = []
        self.requests: list[Seen] = []
        self.lock = threading.RLock()

    def fail(self, status: int, match: str = "", skip: int = 0, times: int = 1,
             retry_after: str | None = None, body: Any = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.faults.append(Fault(status, body if body is not None else self.error_body(status),
                                 headers, match, skip, times))

    def answer(self, body: Any, match: str = "", times: int = 1000) -> None:
        """Answer the next `times` requests whose path contains `match` with HTTP 200 and
        `body`, whatever they ask for (and whatever their token)."""
        self.faults.append(Fault(200, body, {}, match, 0, times))

    def data_requests(self, fragment: str) -> list[Seen]:
        return [seen for seen in self.requests if fragment in seen.path]

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        seen = Seen(method, parts.path, query, body, dict(handler.headers.items()))
        with self.lock:
            self.requests.append(seen)
            status, payload, headers = self._answer(seen)
        data = json.dumps(payload, default=_json_default).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _scripted(self, seen: Seen) -> tuple[int, Any, dict[str, str]] | None:
        fault = scripted_fault(self.faults, seen.path)
        return None if fault is None else (fault.status, fault.body, fault.headers)

    def _answer(self, seen: Seen) -> tuple[int, Any, dict[str, str]]:
        scripted = self._scripted(seen)
        if scripted is not None:
            return scripted
        if seen.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, self.error_body(401), {}
        status, payload, *headers = self.route(seen)
        return status, payload, (headers[0] if headers else {})

    def route(self, seen: Seen) -> tuple:
        raise NotImplementedError

    def error_body(self, status: int) -> Any:
        raise NotImplementedError


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral() else int(value)
    raise TypeError(type(value))


def _iso_z(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z")


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


# HubSpot CRM v3


HUBSPOT_PROPERTIES = {
    "companies": {"name": "string", "domain": "string", "city": "string",
                  "country": "string", "createdate": "datetime",
                  "hs_lastmodifieddate": "datetime", "hs_object_id": "number"},
    "contacts": {"firstname": "string", "lastname": "string", "email": "string",
                 "jobtitle": "string", "createdate": "datetime",
                 "lastmodifieddate": "datetime", "hs_object_id": "number"},
    "deals": {"dealname": "string", "amount": "number", "deal_currency_code": "enumeration",
              "closedate": "datetime", "dealstage": "enumeration", "pipeline": "enumeration",
              "hubspot_owner_id": "enumeration", "createdate": "datetime",
              "hs_lastmodifieddate": "datetime", "hs_object_id": "number"},
    "line_items": {"name": "string", "quantity": "number", "price": "number",
                   "amount": "number", "hs_product_id": "number", "createdate": "datetime",
                   "hs_lastmodifieddate": "datetime", "hs_object_id": "number"},
    "tickets": {"subject": "string", "content": "string", "hs_pipeline": "enumeration",
                "hs_pipeline_stage": "enumeration", "hs_ticket_priority": "enumeration",
                "hs_ticket_category": "enumeration", "createdate": "datetime",
                "hs_lastmodifieddate": "datetime", "hs_object_id": "number"},
}
HUBSPOT_MODIFIED = {"contacts": "lastmodifieddate"}
# HUBSPOT_DEFINED association type ids, as the v4 associations API reports them.
HUBSPOT_ASSOCIATION_TYPES = {
    ("deals", "companies"): 5, ("deals", "contacts"): 3, ("line_items", "deals"): 20,
    ("tickets", "companies"): 339, ("tickets", "contacts"): 16, ("tickets", "deals"): 28,
}


HUBSPOT_OWNERS = [
    {"id": "301", "email": "kim@northwind.example", "firstName": "Kim", "lastName": "Sato",
     "type": "PERSON", "userId": 9101, "createdAt": "2025-05-01T08:00:00.000Z",
     "updatedAt": "2026-01-10T08:00:00.000Z", "archived": False, "teams": []},
    {"id": "302", "email": "lee@northwind.example", "firstName": "Lee", "lastName": "Park",
     "type": "PERSON", "userId": 9102, "createdAt": "2025-05-01T08:00:00.000Z",
     "updatedAt": "2026-01-10T08:00:00.000Z", "archived": False, "teams": []},
    {"id": "303", "email": "ops@northwind.example", "firstName": "", "lastName": "",
     "type": "QUEUE", "userId": None, "createdAt": "2025-05-01T08:00:00.000Z",
     "updatedAt": "2025-05-01T08:00:00.000Z", "archived": False, "teams": []},
]


def _stage(stage_id: str, label: str, order: int, **metadata: str) -> dict:
    return {"id": stage_id, "label": label, "displayOrder": order, "metadata": metadata,
            "createdAt": "2025-05-01T08:00:00.000Z", "updatedAt": "2025-05-01T08:00:00.000Z",
            "archived": False, "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}


# The default pipelines as GET /crm/v3/pipelines/{deals,tickets} returns them.
HUBSPOT_PIPELINES = {
    "deals": [{
        "id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": False,
        "createdAt": "2025-05-01T08:00:00.000Z", "updatedAt": "2025-05-01T08:00:00.000Z",
        "stages": [
            _stage("appointmentscheduled", "Appointment Scheduled", 0, isClosed="false",
                   probability="0.2"),
            _stage("contractsent", "Contract Sent", 1, isClosed="false", probability="0.9"),
            _stage("closedwon", "Closed Won", 2, isClosed="true", probability="1.0"),
            _stage("closedlost", "Closed Lost", 3, isClosed="true", probability="0.0"),
        ],
    }],
    "tickets": [{
        "id": "0", "label": "Support Pipeline", "displayOrder": 0, "archived": False,
        "createdAt": "2025-05-01T08:00:00.000Z", "updatedAt": "2025-05-01T08:00:00.000Z",
        "stages": [
            _stage("1", "New", 0, ticketState="OPEN"),
            _stage("2", "Waiting on contact", 1, ticketState="OPEN"),
            _stage("4", "Closed", 3, ticketState="CLOSED"),
        ],
    }],
}


def hubspot_records() -> dict[str, list[dict]]:
    """Records in the v3 objects API shape: id, properties (all text), createdAt, updatedAt.

    Two companies share one modification time, so a page can end between them.
    """
    base = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

    def record(object_id: int, minutes: int, **properties: str) -> dict:
        modified = base + dt.timedelta(minutes=minutes)
        created = base - dt.timedelta(days=30)
        return {"id": str(object_id), "properties": {
            "createdate": _iso_z(created), "hs_object_id": str(object_id), **properties,
        }, "modified": modified, "createdAt": _iso_z(created), "archived": False}

    return {
        "companies": [
            record(5001, 1, name="Wheelworks", domain="wheelworks.example", city="Belmont",
                   country="United States"),
            record(5002, 2, name="Northern Trail Cycling", domain="ntc.example",
                   city="San Francisco", country="United States"),
            record(5003, 2, name="Trailblazers", domain="trailblazers.example",
                   city="New York", country="United States"),
            record(5004, 4, name="Velo Berlin GmbH", domain="velo.example", city="Berlin",
                   country="Germany"),
            record(5005, 5, name="Roue Libre SARL", domain="rouelibre.example", city="Lyon",
                   country="France"),
        ],
        "contacts": [
            record(7001, 1, firstname="Ada", lastname="Ng", email="ada@wheelworks.example",
                   jobtitle="Controller"),
            record(7002, 3, firstname="Bo", lastname="Lind", email="bo@velo.example",
                   jobtitle="AP Clerk"),
            record(7003, 6, firstname="Cy", lastname="Roux", email="cy@rouelibre.example",
                   jobtitle="CFO"),
        ],
        "deals": [
            record(9001, 1, dealname="50 Glacier Boots", amount="23000",
                   deal_currency_code="USD", closedate="2026-08-31T00:00:00Z",
                   dealstage="closedwon", pipeline="default", hubspot_owner_id="301"),
            record(9002, 2, dealname="Fleet renewal", amount="1250.50",
                   deal_currency_code="EUR", closedate="2026-04-15T00:00:00Z",
                   dealstage="contractsent", pipeline="default", hubspot_owner_id="302"),
            record(9003, 3, dealname="Spare parts", amount="990", deal_currency_code="EUR",
                   closedate="2026-05-01T00:00:00Z", dealstage="appointmentscheduled",
                   pipeline="default", hubspot_owner_id="301"),
        ],
        "line_items": [
            record(8001, 1, name="Glacier Boot", quantity="50", price="460", amount="23000",
                   hs_product_id="1201"),
            record(8002, 2, name="Fleet licence", quantity="1", price="1250.50",
                   amount="1250.50", hs_product_id="1202"),
        ],
        "tickets": [
            record(6001, 1, subject="Invoice INV-1001 shows the wrong VAT rate",
                   content="Please correct the VAT rate.", hs_pipeline="0",
                   hs_pipeline_stage="1", hs_ticket_priority="HIGH",
                   hs_ticket_category="BILLING_ISSUE"),
            record(6002, 3, subject="Backpacks are the wrong color", content="Black, not white.",
                   hs_pipeline="0", hs_pipeline_stage="4", hs_ticket_priority="MEDIUM",
                   hs_ticket_category="PRODUCT_ISSUE"),
        ],
    }


class HubSpotServer(ProviderServer):
    """`/crm/v3/properties`, `/crm/v3/objects` (list and search), v4 batch associations,
    `/crm/v3/owners` and `/crm/v3/pipelines`."""

    def __init__(self, page_size: int = 2) -> None:
        super().__init__(page_size)
        self.objects = hubspot_records()
        self.associations: dict[tuple[str, str], dict[str, list[str]]] = {
            ("deals", "companies"): {"9001": ["5003"], "9002": ["5004"], "9003": ["5004"]},
            ("deals", "contacts"): {"9002": ["7002"]},
            ("line_items", "deals"): {"8001": ["9001"], "8002": ["9002"]},
            ("tickets", "companies"): {"6001": ["5004"], "6002": ["5003"]},
            ("tickets", "contacts"): {"6001": ["7002"]},
            ("tickets", "deals"): {"6001": ["9002"]},
        }

    def modify(self, kind: str, object_id: str, at: dt.datetime, **properties: str) -> None:
        """Change (or create) an object, as a user editing it at `at` would."""
        with self.lock:
            found = next((o for o in self.objects[kind] if o["id"] == object_id), None)
            if found is None:
                found = {"id": object_id, "properties": {"createdate": _iso_z(at),
                                                         "hs_object_id": object_id},
                         "createdAt": _iso_z(at), "archived": False}
                self.objects[kind].append(found)
            found["properties"].update(properties)
            found["modified"] = at

    def error_body(self, status: int) -> Any:
        if status == 401:
            return {"status": "error", "category": "INVALID_AUTHENTICATION",
                    "correlationId": "8f3a5c1e-0d4b-4a5e-9c1f-2b7e6d0a9f11",
                    "message": "Authentication credentials not found. This API supports "
                               "OAuth 2.0 authentication."}
        if status == 429:
            return {"status": "error", "errorType": "RATE_LIMIT", "policyName": "SECONDLY",
                    "correlationId": "0c7e4f8a-5d2b-4e61-8a3f-71b9c2d4e5f6",
                    "message": "You have reached your secondly limit."}
        return {"status": "error", "category": "INTERNAL_ERROR",
                "correlationId": "4b1d2c3e-5f60-4718-9a0b-c1d2e3f40516",
                "message": "internal error"}

    def route(self, seen: Seen) -> tuple:
        path = seen.path
        if m := re.fullmatch(r"/crm/v3/properties/(\w+)", path):
            return 200, {"results": [
                {"name": name, "label": name, "type": kind, "fieldType": "text"}
                for name, kind in HUBSPOT_PROPERTIES[m[1]].items()
            ]}
        if path == "/crm/v3/owners":
            limit = min(int(seen.query.get("limit", 100)), self.page_size)
            chunk, paging = self._page(HUBSPOT_OWNERS, seen.query.get("after"), limit)
            return 200, {"results": chunk, **paging}
        if m := re.fullmatch(r"/crm/v3/pipelines/(deals|tickets)", path):
            return 200, {"results": HUBSPOT_PIPELINES[m[1]]}
        if m := re.fullmatch(r"/crm/v3/objects/(\w+)", path):
            return self._list(m[1], seen.query)
        if m := re.fullmatch(r"/crm/v3/objects/(\w+)/search", path):
            return self._search(m[1], seen.body)
        if m := re.fullmatch(r"/crm/v4/associations/(\w+)/(\w+)/batch/read", path):
            return self._associations(m[1], m[2], seen.body)
        return 404, {"status": "error", "category": "OBJECT_NOT_FOUND",
                     "message": f"resource not found: {path}"}

    def _shape(self, kind: str, record: dict, properties: list[str]) -> dict:
        modified_name = HUBSPOT_MODIFIED.get(kind, "hs_lastmodifieddate")
        values = {**record["properties"], modified_name: _iso_z(record["modified"])}
        return {"id": record["id"],
                "properties": {name: values.get(name) for name in properties},
                "createdAt": record["createdAt"], "updatedAt": _iso_z(record["modified"]),
                "archived": record["archived"]}

    def _page(self, items: list, after: str | None, limit: int) -> tuple[list, dict]:
        start = int(after or 0)
        chunk = items[start:start + limit]
        paging = {}
        if start + limit < len(items):
            paging = {"paging": {"next": {"after": str(start + limit)}}}
        return chunk, paging

    def _list(self, kind: str, query: dict[str, str]) -> tuple:
        limit = min(int(query.get("limit", 10)), 100, self.page_size)
        properties = [p for p in query.get("properties", "").split(",") if p]
        items = sorted(self.objects[kind], key=lambda r: int(r["id"]))
        chunk, paging = self._page(items, query.get("after"), limit)
        return 200, {"results": [self._shape(kind, r, properties) for r in chunk], **paging}

    def _search(self, kind: str, body: dict) -> tuple:
        modified_name = HUBSPOT_MODIFIED.get(kind, "hs_lastmodifieddate")
        limit = min(int(body.get("limit", 10)), 200, self.page_size)
        items = list(self.objects[kind])
        for group in body.get("filterGroups", []):
            for rule in group["filters"]:
                if rule["propertyName"] != modified_name or rule["operator"] != "GTE":
                    return 400, {"status": "error", "category": "VALIDATION_ERROR",
                                 "message": f"unsupported filter {rule}"}
                since = dt.datetime.fromtimestamp(int(rule["value"]) / 1000, dt.UTC)
                items = [r for r in items if r["modified"] >= since]
        items.sort(key=lambda r: (r["modified"], int(r["id"])))
        chunk, paging = self._page(items, body.get("after"), limit)
        properties = list(body.get("properties", []))
        return 200, {"total": len(items),
                     "results": [self._shape(kind, r, properties) for r in chunk], **paging}

    def _associations(self, source: str, target: str, body: dict) -> tuple:
        links = self.associations.get((source, target), {})
        type_id = HUBSPOT_ASSOCIATION_TYPES[(source, target)]
        results, errors = [], []
        for item in body["inputs"]:
            ids = links.get(item["id"])
            if not ids:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "message": f"No {target} is associated with {item['id']}.",
                               "context": {"fromObjectId": [item["id"]]}})
                continue
            results.append({"from": {"id": item["id"]}, "to": [
                {"toObjectId": int(i), "associationTypes": [
                    {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]}
                for i in ids
            ]})
        answer = {"status": "COMPLETE", "results": results,
                  "startedAt": "2026-03-02T09:00:00.000Z",
                  "completedAt": "2026-03-02T09:00:00.020Z"}
        if errors:
            answer["errors"], answer["numErrors"] = errors, len(errors)
        return (207 if errors else 200), answer


# Salesforce REST API

_SF_PREFIXES = {"Account": "001", "Case": "500", "Opportunity": "006",
                "Order__c": "a01", "Order_Item__c": "a02", "Product_Family__c": "a03",
                "Product__c": "a04"}
_SF_FILES = {"Account": "Accounts.json", "Case": "Cases.json",
             "Opportunity": "Opportunities.json", "Order__c": "Order__cs.json",
             "Order_Item__c": "Order_Item__cs.json",
             "Product_Family__c": "Product_Family__cs.json", "Product__c": "Product__cs.json"}
SF_API = "v61.0"


def _sf_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def salesforce_records() -> dict[str, list[dict]]:
    """The eBikes sObject tree as an org holds it: ids assigned, `@Ref` resolved, system
    fields set. Products 2 and 3 share one LastModifiedDate (a bulk update)."""
    base = dt.datetime(2026, 2, 10, 8, 0, tzinfo=dt.UTC)
    ids: dict[str, str] = {}
    loaded: dict[str, list[dict]] = {}
    for sobject, file_name in _SF_FILES.items():
        records = json.loads((EBIKES / file_name).read_text())["records"]
        for n, record in enumerate(records, start=1):
            ids[record["attributes"]["referenceId"]] = f"{_SF_PREFIXES[sobject]}5g00000{n:05d}AAA"
        loaded[sobject] = records
    objects: dict[str, list[dict]] = {}
    for sobject, records in loaded.items():
        rows = []
        for n, record in enumerate(records, start=1):
            minutes = 2 if sobject == "Product__c" and n == 3 else n
            modified = base + dt.timedelta(minutes=minutes)
            row = {"Id": ids[record["attributes"]["referenceId"]], "IsDeleted": False,
                   "CreatedDate": _sf_time(base - dt.timedelta(days=1)),
                   "LastModifiedDate": _sf_time(modified), "SystemModstamp": _sf_time(modified)}
            for name, value in record.items():
                if name == "attributes":
                    continue
                if isinstance(value, str) and value.startswith("@"):
                    value = ids[value[1:]]
                row[name] = value
            rows.append(row)
        objects[sobject] = rows
    return objects


def _sf_type(name: str, value: Any) -> str:
    if name == "Id":
        return "id"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "double"
    if name.endswith("Date") and isinstance(value, str) and "T" in value:
        return "datetime"
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return "date"
    if isinstance(value, str) and re.fullmatch(r"\w{3}5g00000\d{5}AAA", value):
        return "reference"
    return "string"


class SalesforceServer(ProviderServer):
    """`/sobjects/<Object>/describe`, `/query` and `/queryAll` with a SOQL subset, and the
    `nextRecordsUrl` locators of their result sets."""

    def __init__(self, page_size: int = 2) -> None:
        super().__init__(page_size)
        self.objects = salesforce_records()
        self.cursors: dict[str, list[dict]] = {}

    def modify(self, sobject: str, record_id: str, at: dt.datetime, **fields: Any) -> None:
        with self.lock:
            rows = self.objects[sobject]
            found = next((r for r in rows if r["Id"] == record_id), None)
            if found is None:
                found = {"Id": record_id, "IsDeleted": False, "CreatedDate": _sf_time(at)}
                rows.append(found)
            found.update(fields)
            found["LastModifiedDate"] = found["SystemModstamp"] = _sf_time(at)

    def error_body(self, status: int) -> Any:
        if status == 401:
            return [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        if status == 429:
            return [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        return [{"message": "An unexpected error occurred. Please include this ErrorId if you "
                            "contact support: 1418309466-32871 (-1229263385)",
                 "errorCode": "UNKNOWN_EXCEPTION"}]

    def describe(self, sobject: str) -> dict[str, str]:
        fields: dict[str, str] = {}
        for row in self.objects[sobject]:
            for name, value in row.items():
                if name not in fields or fields[name] == "string" and value is not None:
                    fields[name] = _sf_type(name, value)
        for name in ("IsDeleted",):
            fields[name] = "boolean"
        for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            fields[name] = "datetime"
        return fields

    def route(self, seen: Seen) -> tuple:
        prefix = f"/services/data/{SF_API}"
        path = seen.path
        if m := re.fullmatch(prefix + r"/sobjects/(\w+)/describe", path):
            if m[1] not in self.objects:
                return 404, [{"errorCode": "NOT_FOUND",
                              "message": "The requested resource does not exist"}]
            fields = [{"name": n, "type": t} for n, t in self.describe(m[1]).items()]
            if m[1] == "Account":
                fields.append({"name": "BillingAddress", "type": "address"})
            return 200, {"name": m[1], "queryable": True, "fields": fields}
        if path in (f"{prefix}/query", f"{prefix}/queryAll"):
            return self._query(seen.query.get("q", ""), path.endswith("queryAll"))
        if m := re.fullmatch(prefix + r"/query/(01g\w+)-(\d+)", path):
            return self._page(m[1], int(m[2]))
        return 404, [{"errorCode": "NOT_FOUND",
                      "message": "The requested resource does not exist"}]

    def _query(self, soql: str, include_deleted: bool) -> tuple:
        match = re.fullmatch(
            r"SELECT (?P<fields>.+?) FROM (?P<obj>\w+)"
            r"(?: WHERE (?P<cursor>\w+) >= (?P<since>\S+))?"
            r"(?: ORDER BY (?P<order>\w+) ASC, Id ASC)?", soql)
        if not match:
            return 400, [{"errorCode": "MALFORMED_QUERY", "message": f"unexpected: {soql}"}]
        sobject = match["obj"]
        if sobject not in self.objects:
            return 400, [{"errorCode": "INVALID_TYPE",
                          "message": f"sObject type '{sobject}' is not supported."}]
        known = self.describe(sobject)
        fields = [f.strip() for f in match["fields"].split(",")]
        unknown = [f for f in fields if f not in known]
        if unknown:
            return 400, [{"errorCode": "INVALID_FIELD",
                          "message": f"No such column '{unknown[0]}' on entity '{sobject}'."}]
        rows = [r for r in self.objects[sobject] if include_deleted or not r["IsDeleted"]]
        if match["since"]:
            since = _instant(match["since"])
            rows = [r for r in rows if _instant(r[match["cursor"]]) >= since]
        if match["order"]:
            rows.sort(key=lambda r: (_instant(r[match["order"]]), r["Id"]))
        records = [
            {"attributes": {"type": sobject,
                            "url": f"/services/data/{SF_API}/sobjects/{sobject}/{r['Id']}"},
             **{f: r.get(f) for f in fields}}
            for r in rows
        ]
        locator = f"01gD0000002HU6K{len(self.cursors):03d}"
        self.cursors[locator] = records
        return self._page(locator, 0)

    def _page(self, locator: str, offset: int) -> tuple:
        records = self.cursors[locator]
        chunk = records[offset:offset + self.page_size]
        done = offset + self.page_size >= len(records)
        answer: dict[str, Any] = {"totalSize": len(records), "done": done, "records": chunk}
        if not done:
            answer["nextRecordsUrl"] = (f"/services/data/{SF_API}/query/{locator}-"
                                        f"{offset + self.page_size}")
        return 200, answer


# Stripe

_STRIPE_LISTS = {"/v1/customers": "customer", "/v1/invoices": "invoice",
                 "/v1/charges": "charge", "/v1/payment_intents": "payment_intent",
                 "/v1/refunds": "refund", "/v1/credit_notes": "credit_note",
                 "/v1/balance_transactions": "balance_transaction", "/v1/payouts": "payout",
                 "/v1/disputes": "dispute"}


def stripe_objects() -> dict[str, list[dict]]:
    """List contents built from Stripe's published fixture of each object type: copies with
    their own ids, linked to each other, created an hour apart. Customers 2 and 3 are created
    in the same second. Each invoice has three lines."""
    fixtures = json.loads(STRIPE_FIXTURES.read_text())["resources"]
    counts = {"customer": 5, "invoice": 3, "charge": 3, "payment_intent": 2, "refund": 2,
              "credit_note": 1, "balance_transaction": 3, "payout": 2, "dispute": 1}
    base = 1767261600  # 2026-01-01 10:00:00 UTC
    objects: dict[str, list[dict]] = {}
    for kind, count in counts.items():
        template = fixtures[kind]
        prefix = template["id"].split("_")[0]
        items = []
        for n in range(1, count + 1):
            obj = copy.deepcopy(template)
            obj["id"] = f"{prefix}_Q2c{kind[:3].upper()}{n:05d}"
            created = base + 3600 * n
            if kind == "customer" and n == 3:
                created = base + 3600 * 2
            obj["created"] = created
            items.append(obj)
        objects[kind] = items
    customers = [c["id"] for c in objects["customer"]]
    for n, invoice in enumerate(objects["invoice"]):
        invoice["customer"] = customers[n]
        line_template = fixtures["line_item"]
        lines = []
        for k in range(1, 4):
            line = copy.deepcopy(line_template)
            line["id"] = f"il_Q2c{n + 1:03d}{k:03d}"
            line["invoice"] = invoice["id"]
            line["amount"] = 1000 * k
            lines.append(line)
        invoice["lines"] = {"object": "list", "data": lines, "has_more": False,
                            "url": f"/v1/invoices/{invoice['id']}/lines"}
    for n, charge in enumerate(objects["charge"]):
        charge["customer"] = customers[n]
        charge["balance_transaction"] = objects["balance_transaction"][n]["id"]
    for n, refund in enumerate(objects["refund"]):
        refund["charge"] = objects["charge"][n]["id"]
    note = objects["credit_note"][0]
    note["customer"], note["invoice"] = customers[0], objects["invoice"][0]["id"]
    objects["dispute"][0]["charge"] = objects["charge"][0]["id"]
    return objects


class StripeServer(ProviderServer):
    """List endpoints with `limit`, `starting_after` and `created[gte]`, newest first, and
    the lines list of an invoice. Embedded invoice lines stop after `embedded_lines`."""

    token = "sk_test_51Q2cLocalTestKey0000wxyz"

    def __init__(self, page_size: int = 2, embedded_lines: int = 2) -> None:
        super().__init__(page_size)
        self.objects = stripe_objects()
        self.embedded_lines = embedded_lines

    def add(self, kind: str, created: int, **fields: Any) -> dict:
        with self.lock:
            template = copy.deepcopy(self.objects[kind][0])
            template.update(fields)
            template["created"] = created
            self.objects[kind].append(template)
            return template

    def error_body(self, status: int) -> Any:
        if status == 401:
            return {"error": {"message": "Invalid API Key provided: sk_test_****wxyz",
                              "type": "invalid_request_error"}}
        if status == 429:
            return {"error": {"code": "rate_limit", "type": "invalid_request_error",
                              "message": "Request rate limit exceeded. Learn more about rate "
                                         "limits here https://stripe.com/docs/rate-limits."}}
        return {"error": {"type": "api_error",
                          "message": "An unknown error occurred (req_Q2cLocal0001)"}}

    def route(self, seen: Seen) -> tuple:
        version = {"Stripe-Version": seen.headers.get("Stripe-Version", "2024-06-20"),
                   "Request-Id": f"req_Q2c{len(self.requests):06d}"}
        if seen.path in _STRIPE_LISTS:
            kind = _STRIPE_LISTS[seen.path]
            items = [self._public(kind, o) for o in self.objects[kind]]
            return (*self._list(seen.path, items, seen.query, kind), version)
        if m := re.fullmatch(r"/v1/invoices/(\w+)/lines", seen.path):
            invoice = next((o for o in self.objects["invoice"] if o["id"] == m[1]), None)
            if invoice is None:
                return 404, self._missing("invoice", m[1]), version
            lines = list(invoice["lines"]["data"])
            return (*self._list(seen.path, lines, seen.query, "line_item", ordered=True),
                    version)
        return 404, {"error": {"type": "invalid_request_error",
                               "message": f"Unrecognized request URL (GET: {seen.path})."}}, version

    def _public(self, kind: str, obj: dict) -> dict:
        if kind != "invoice":
            return obj
        shown = copy.deepcopy(obj)
        lines = shown["lines"]["data"]
        shown["lines"]["data"] = lines[:self.embedded_lines]
        shown["lines"]["has_more"] = len(lines) > self.embedded_lines
        return shown

    def _missing(self, kind: str, object_id: str) -> dict:
        return {"error": {"code": "resource_missing", "type": "invalid_request_error",
                          "param": "id", "message": f"No such {kind}: '{object_id}'"}}

    def _list(self, url: str, items: list[dict], query: dict[str, str], kind: str,
              ordered: bool = False) -> tuple:
        limit = int(query.get("limit", 10))
        if not 1 <= limit <= 100:
            return 400, {"error": {"type": "invalid_request_error", "param": "limit",
                                   "message": "Invalid integer: must be between 1 and 100"}}
        if "created[gte]" in query:
            items = [o for o in items if o["created"] >= int(query["created[gte]"])]
        if not ordered:
            items = sorted(items, key=lambda o: (o["created"], o["id"]), reverse=True)
        if "starting_after" in query:
            ids = [o["id"] for o in items]
            if query["starting_after"] not in ids:
                return 400, self._missing(kind, query["starting_after"])
            items = items[ids.index(query["starting_after"]) + 1:]
        limit = min(limit, self.page_size)
        return 200, {"object": "list", "url": url, "has_more": len(items) > limit,
                     "data": items[:limit]}


# QuickBooks Online

REALM = "9341453050918345"


def _qbo_time(moment: dt.datetime) -> str:
    """QuickBooks writes times in the company's zone; the sample company is in California."""
    return moment.astimezone(dt.timezone(dt.timedelta(hours=-8))).strftime(
        "%Y-%m-%dT%H:%M:%S-08:00")


def quickbooks_entities() -> dict[str, list[dict]]:
    """Entities in the shapes of Intuit's API reference (Customer, Item, Term, Invoice with
    sales, discount and subtotal lines and a tax detail, Payment with linked invoices).
    Invoices 1002 and 1003 were last updated in the same second."""
    base = dt.datetime(2026, 1, 20, 17, 0, tzinfo=dt.UTC)

    def meta(minutes: int) -> dict:
        return {"CreateTime": _qbo_time(base - dt.timedelta(days=2)),
                "LastUpdatedTime": _qbo_time(base + dt.timedelta(minutes=minutes))}

    def address(address_id: str, line: str, city: str, code: str, postal: str) -> dict:
        return {"Id": address_id, "Line1": line, "City": city, "Country": "USA",
                "CountrySubDivisionCode": code, "PostalCode": postal}

    customers = [
        {"Id": "58", "SyncToken": "0", "domain": "QBO", "sparse": False,
         "DisplayName": "Wheelworks", "CompanyName": "Wheelworks Inc.",
         "FullyQualifiedName": "Wheelworks", "GivenName": "Ada", "FamilyName": "Ng",
         "PrimaryEmailAddr": {"Address": "ap@wheelworks.example"},
         "WebAddr": {"URI": "https://wheelworks.example"},
         "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
         "Active": True, "Balance": Decimal("1175.00"), "Taxable": True,
         "BillAddr": address("94", "480 Trapelo Road", "Belmont", "MA", "02478"),
         "SalesTermRef": {"value": "3"}, "PreferredDeliveryMethod": "Email",
         "PrimaryTaxIdentifier": "XXXXX6789", "MetaData": meta(1)},
        {"Id": "59", "SyncToken": "2", "domain": "QBO", "sparse": False,
         "DisplayName": "Trailblazers", "CompanyName": "Trailblazers LLC",
         "FullyQualifiedName": "Trailblazers", "Active": True, "Balance": Decimal("0"),
         "Taxable": False, "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
         "BillAddr": address("95", "1095 Avenue of the Americas", "New York", "NY", "10036"),
         "PreferredDeliveryMethod": "Print", "MetaData": meta(2)},
        {"Id": "60", "SyncToken": "0", "domain": "QBO", "sparse": False,
         "DisplayName": "Trailblazers:East", "FullyQualifiedName": "Trailblazers:East",
         "ParentRef": {"value": "59"}, "Job": True, "Active": True, "Balance": Decimal("0"),
         "CurrencyRef": {"value": "USD", "name": "United States Dollar"}, "MetaData": meta(3)},
    ]
    items = [
        {"Id": "11", "Name": "Glacier Boot", "FullyQualifiedName": "Glacier Boot",
         "Description": "Insulated boot", "Type": "Inventory", "UnitPrice": Decimal("460"),
         "Active": True, "IncomeAccountRef": {"value": "79", "name": "Sales of Product Income"},
         "MetaData": meta(1)},
        {"Id": "12", "Name": "Fitting", "FullyQualifiedName": "Fitting", "Type": "Service",
         "UnitPrice": Decimal("75"), "Active": True, "MetaData": meta(2)},
    ]
    terms = [
        {"Id": "3", "Name": "Net 30", "Type": "STANDARD", "DueDays": 30, "Active": True,
         "MetaData": meta(1)},
    ]

    def invoice(invoice_id: str, doc: str, customer: str, minutes: int, qty: int,
                opportunity: str) -> dict:
        amount = Decimal(460) * qty
        discount = (amount * Decimal("0.10")).quantize(Decimal("0.01"))
        net = amount - discount
        tax = (net * Decimal("0.0625")).quantize(Decimal("0.01"))
        return {
            "Id": invoice_id, "SyncToken": "1", "domain": "QBO", "sparse": False,
            "DocNumber": doc, "TxnDate": "2026-01-19", "DueDate": "2026-02-18",
            "CustomerRef": {"value": customer, "name": "Wheelworks"},
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "ExchangeRate": 1, "TotalAmt": net + tax, "Balance": net + tax,
            "HomeBalance": net + tax, "HomeTotalAmt": net + tax,
            "BillEmail": {"Address": "ap@wheelworks.example"},
            "BillAddr": address("94", "480 Trapelo Road", "Belmont", "MA", "02478"),
            "SalesTermRef": {"value": "3"}, "CustomerMemo": {"value": "Thank you!"},
            "PrivateNote": "", "EmailStatus": "EmailSent", "ApplyTaxAfterDiscount": True,
            "CustomField": [{"DefinitionId": "1", "Name": "Salesforce Opportunity Id",
                             "Type": "StringType", "StringValue": opportunity}],
            "Line": [
                {"Id": "1", "LineNum": 1, "Description": "Glacier Boot", "Amount": amount,
                 "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {
                     "ItemRef": {"value": "11", "name": "Glacier Boot"},
                     "UnitPrice": Decimal(460), "Qty": qty,
                     "TaxCodeRef": {"value": "TAX"}}},
                {"Amount": discount, "DetailType": "DiscountLineDetail",
                 "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10,
                                        "DiscountAccountRef": {"value": "86"}}},
                {"Amount": amount, "DetailType": "SubTotalLineDetail",
                 "SubTotalLineDetail": {}},
            ],
            "TxnTaxDetail": {"TxnTaxCodeRef": {"value": "2"}, "TotalTax": tax, "TaxLine": [
                {"Amount": tax, "DetailType": "TaxLineDetail", "TaxLineDetail": {
                    "TaxRateRef": {"value": "3"}, "PercentBased": True,
                    "TaxPercent": Decimal("6.25"), "NetAmountTaxable": net}}]},
            "MetaData": meta(minutes),
        }

    invoices = [
        invoice("1001", "INV-1001", "58", 5, 2, "0065g0000001AAA"),
        invoice("1002", "INV-1002", "59", 6, 1, "0065g0000002AAA"),
        invoice("1003", "INV-1003", "58", 6, 3, "0065g0000003AAA"),
        invoice("1004", "INV-1004", "60", 8, 5, "0065g0000004AAA"),
    ]
    payments = [
        {"Id": "2001", "SyncToken": "0", "domain": "QBO", "TxnDate": "2026-01-25",
         "CustomerRef": {"value": "58"}, "CurrencyRef": {"value": "USD"},
         "TotalAmt": Decimal("500.00"), "UnappliedAmt": Decimal("0"),
         "PaymentRefNum": "CHK-881", "PaymentMethodRef": {"value": "2"},
         "Line": [{"Amount": Decimal("500.00"),
                   "LinkedTxn": [{"TxnId": "1001", "TxnType": "Invoice"}]}],
         "MetaData": meta(10)},
    ]
    return {"Customer": customers, "Item": items, "Term": terms, "Invoice": invoices,
            "Payment": payments, "CreditMemo": []}


class QuickBooksServer(ProviderServer):
    """`/v3/company/<realm>/query` with the query language subset q2c uses."""

    def __init__(self, page_size: int = 2) -> None:
        super().__init__(page_size)
        self.entities = quickbooks_entities()

    def modify(self, entity: str, entity_id: str, at: dt.datetime, **fields: Any) -> None:
        with self.lock:
            found = next((e for e in self.entities[entity] if e["Id"] == entity_id), None)
            if found is None:
                found = copy.deepcopy(self.entities[entity][0])
                found["Id"] = entity_id
                self.entities[entity].append(found)
            found.update(fields)
            found["MetaData"] = {**found["MetaData"], "LastUpdatedTime": _qbo_time(at)}

    def error_body(self, status: int) -> Any:
        now = "2026-01-21T09:00:00.000-08:00"
        if status == 401:
            # The identity layer answers in lower case, unlike the query API's Fault.
            return {"warnings": None, "intuitObject": None, "fault": {"error": [{
                "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "detail": "Token expired: eyJ", "code": "3200", "element": None}],
                "type": "AUTHENTICATION"}, "report": None, "queryResponse": None,
                "batchItemResponse": [], "attachableResponse": [], "syncErrorResponse": None,
                "requestId": None, "time": 1768928400000, "status": None,
                "cdcresponse": []}
        if status == 429:
            return {"Fault": {"Error": [{"Message": "message=ThrottleExceeded; "
                                                    "errorCode=003001; statusCode=429",
                                         "Detail": "The request limit was reached.",
                                         "code": "3001"}], "type": "SERVICE"}, "time": now}
        return {"Fault": {"Error": [{"Message": "An application error has occurred while "
                                                "processing your request",
                                     "Detail": "System Failure Error: Unknown",
                                     "code": "10000"}], "type": "SystemFault"}, "time": now}

    def route(self, seen: Seen) -> tuple:
        if seen.path != f"/v3/company/{REALM}/query":
            return 404, {"Fault": {"Error": [{"Message": "Resource not found",
                                              "code": "610"}], "type": "ValidationFault"}}
        statement = seen.query.get("query", "")
        match = re.fullmatch(
            r"select \* from (\w+)(?: where Metadata\.LastUpdatedTime >= '([^']+)')?"
            r" orderby Metadata\.LastUpdatedTime startposition (\d+) maxresults (\d+)",
            statement, re.IGNORECASE)
        if not match or match[1] not in self.entities:
            return 400, {"Fault": {"Error": [{
                "Message": "Error parsing query", "code": "4000",
                "Detail": f"QueryParserError: Encountered an unexpected token in {statement}"}],
                "type": "ValidationFault"}, "time": "2026-01-21T09:00:00.000-08:00"}
        name, since, start, size = match[1], match[2], int(match[3]), int(match[4])
        rows = list(self.entities[name])
        if since:
            rows = [r for r in rows
                    if _instant(r["MetaData"]["LastUpdatedTime"]) >= _instant(since)]
        rows.sort(key=lambda r: _instant(r["MetaData"]["LastUpdatedTime"]))
        chunk = rows[start - 1:start - 1 + min(size, 1000)]
        answer: dict[str, Any] = {}
        if chunk:
            answer = {name: chunk, "startPosition": start, "maxResults": len(chunk)}
        return 200, {"QueryResponse": answer, "time": "2026-01-21T09:00:00.000-08:00"}


def running(server: ProviderServer) -> Iterator[ProviderServer]:
    """Start a server for a fixture and stop it after the test."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
