"""A local stand-in for Adobe Experience Manager: HTTP servers on 127.0.0.1.

One `AemStore` holds what an AEM author holds (content fragments with their status, stored
versions, tags and replication, and DAM assets with metadata and an original rendition);
an `AemServer` serves it in both wire formats at once:

- the Sites OpenAPI of AEM as a Cloud Service: `GET /adobe/sites/cf/fragments?path=&limit=
  &cursor=` (at most 50 a page, an opaque `cursor` for the next), `/{id}` with a weak
  `ETag`, `/{id}/tags`, `/{id}/versions` (paged likewise) and `/{id}/versions/{versionId}`,
  errors as Problem Details;
- the Assets HTTP API of AEM 6.5: `GET /api/assets/<path>.json` answers a folder (Siren
  `assets/folder`, `srn:paging`, `offset`/`limit`, a `next` link) or an asset (content
  fragments with `properties.elements`, `created`/`modified` in milliseconds and
  `cq:model: {"path"}` as a recorded AEM answer has them, and the replication properties
  `cq:lastReplicationAction`, `cq:lastReplicated` (a JCR date, `Mon Nov 02 2026 10:04:00
  GMT+0100`), `cq:lastReplicatedBy`), and
  `GET /content/dam/<path>/jcr:content/renditions/original` the bytes.

A server with `role="publish"` is the 6.5 publish tier: it serves the copy of each fragment
as it was last activated, and nothing else. Requests need the bearer token or the basic
user of this module (401 otherwise). `fail(...)` scripts 429 with `Retry-After`, 5xx or any
status for the next matching requests; a deleted fragment answers 404 or 410.

The recorded fixtures in `../shared/data/aem-content-fragment-fixtures` are served as they
are: the stored `structured` fragment (`jcr-dam-structured-fragment.json`, a fragment of the
global `test` model, not of q2c's models), its elements in 6.5 as the Sling Model Exporter
recorded them (`exporter-structured.json`). q2c's own fragments are built here in the same
published shapes (SOURCE.md: no recorded Sites API or Assets API responses exist).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from provider_servers import LoopbackServer, scripted_fault

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FIXTURES = SHARED_DATA / "aem-content-fragment-fixtures"
TOKEN = "aem-test-token-5b1e"
USER, PASSWORD = "q2c-reader", "s3cret-pass"
START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
# The author runs in Central European Time: JCR dates carry its offset.
AUTHOR_ZONE = dt.timezone(dt.timedelta(hours=1))
MODELS = "/conf/q2c/settings/dam/cfm/models"
BLOCK_MODEL = f"{MODELS}/q2c-block"
LEGAL_MODEL = f"{MODELS}/q2c-legal-text"
FIXTURE_PATH = "/content/dam/q2c/en/fixtures/structured"
SITES = "/adobe/sites/cf/fragments"
SITES_LIMIT = 50


@dataclass
class Version:
    id: str
    title: str
    created: dt.datetime
    by: str
    snapshot: dict
    comment: str = ""


@dataclass
class Fragment:
    path: str
    id: str
    model: str
    title: str
    fields: list[dict]
    tags: list[str]
    created: dt.datetime
    modified: dt.datetime
    by: str = "Ana Costa"
    status: str = "NEW"
    published: tuple[dt.datetime, str] | None = None
    replication: tuple[str, dt.datetime, str] | None = None
    live: dict | None = None
    versions: list[Version] = field(default_factory=list)
    revision: int = 1
    gone: int | None = None
    elements: dict | None = None

    def snapshot(self) -> dict:
        return {"title": self.title, "fields": copy.deepcopy(self.fields)}


@dataclass
class Asset:
    path: str
    content: bytes
    mime_type: str
    metadata: dict


class AemStore:
    """What the author holds; every change moves the clock on by a minute."""

    def __init__(self) -> None:
        self.fragments: dict[str, Fragment] = {}
        self.assets: dict[str, Asset] = {}
        self.clock = START
        self.lock = threading.RLock()

    def tick(self) -> dt.datetime:
        self.clock += dt.timedelta(minutes=1)
        return self.clock

    def add(self, path: str, model: str, body: str, *, content_id: str | None = None,
            placement: str | None = None, case: str | None = None, tags: tuple = (),
            title: str | None = None, mime_type: str = "text/html",
            extra: dict[str, str] | None = None) -> Fragment:
        fields = [_field("body", "long-text", [body], mime_type)]
        for name, value in (("contentId", content_id), ("placement", placement),
                            ("case", case), *(extra or {}).items()):
            if value is not None:
                fields.append(_field(name, "enumeration" if name in ("placement", "case")
                                     else "text", [value]))
        when = self.tick()
        fragment = Fragment(path, str(uuid.uuid5(uuid.NAMESPACE_URL, path)), model,
                            title or path.rsplit("/", 1)[-1].replace("-", " ").title(),
                            fields, list(tags), when, when)
        self.fragments[path] = fragment
        return fragment

    def edit(self, path: str, body: str) -> None:
        fragment = self.fragments[path]
        next(f for f in fragment.fields if f["name"] == "body")["values"] = [body]
        fragment.modified = self.tick()
        fragment.revision += 1
        if fragment.status == "PUBLISHED":
            fragment.status = "MODIFIED"
        elif fragment.status == "NEW":
            fragment.status = "DRAFT"

    def create_version(self, path: str, comment: str = "saved by the author") -> Version:
        fragment = self.fragments[path]
        version = Version(str(uuid.uuid4()), f"1.{len(fragment.versions)}", self.tick(),
                          fragment.by, fragment.snapshot(), comment)
        fragment.versions.append(version)
        return version

    def publish(self, path: str, by: str = "Lena Weber") -> None:
        """Publish as AEM does: a version of the fragment first, then the replication."""
        fragment = self.fragments[path]
        when = self.tick()
        fragment.versions.append(Version(str(uuid.uuid4()), f"1.{len(fragment.versions)}",
                                         when, by, fragment.snapshot(), "Activated"))
        fragment.status = "PUBLISHED"
        fragment.published = (when, by)
        fragment.replication = ("Activate", when, by)
        fragment.live = fragment.snapshot()

    def unpublish(self, path: str, by: str = "Lena Weber") -> None:
        fragment = self.fragments[path]
        fragment.status = "UNPUBLISHED"
        fragment.replication = ("Deactivate", self.tick(), by)
        fragment.live = None

    def delete(self, path: str, status: int = 410) -> None:
        self.fragments[path].gone = status

    def add_asset(self, path: str, content: bytes, mime_type: str, metadata: dict) -> Asset:
        asset = Asset(path, content, mime_type, {"dc:format": mime_type,
                                                  "dam:size": len(content), **metadata})
        self.assets[path] = asset
        return asset

    def add_fixture(self) -> Fragment:
        """The recorded `structured` fragment, stored in q2c's DAM folder for English."""
        node = json.loads((FIXTURES / "jcr-dam-structured-fragment.json").read_text())
        content = node["structured"]["jcr:content"]
        master = content["data"]["master"]
        fields = [
            _field(name, "long-text" if f"{name}@ContentType" in master else "text",
                   value if isinstance(value, list) else [value],
                   master.get(f"{name}@ContentType"))
            for name, value in master.items() if "@" not in name and ":" not in name
        ]
        exporter = json.loads((FIXTURES / "exporter-structured.json").read_text())
        created = _ecma_parse(node["structured"]["jcr:created"])
        fragment = Fragment(FIXTURE_PATH, content["jcr:uuid"], content["data"]["cq:model"],
                            content["jcr:title"], fields, list(content["metadata"]["cq:tags"]),
                            created, _ecma_parse(content["jcr:lastModified"]), status="DRAFT",
                            by=content["jcr:lastModifiedBy"], elements=exporter["elements"])
        self.fragments[FIXTURE_PATH] = fragment
        return fragment


@dataclass
class Fault:
    status: int
    match: str
    times: int
    headers: dict[str, str]
    skip: int = 0


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class AemServer(LoopbackServer):
    """An AEM author (or, with `role="publish"`, a 6.5 publish tier) on a loopback port."""

    methods = ("GET",)

    def __init__(self, store: AemStore, role: str = "author") -> None:
        super().__init__()
        self.store = store
        self.role = role
        self.faults: list[Fault] = []
        self.requests: list[Seen] = []
        self.assets_page_cap = 50

    def fail(self, status: int, match: str = "", times: int = 1,
             retry_after: str | None = None, skip: int = 0) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.faults.append(Fault(status, match, times, headers, skip))

    def seen(self, fragment: str) -> list[Seen]:
        return [request for request in self.requests if fragment in request.path]

    # -- dispatch -------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        seen = Seen("GET", path, query, dict(handler.headers.items()))
        with self.store.lock:
            self.requests.append(seen)
            status, body, headers = self._answer(seen)
        if isinstance(body, bytes):
            data, kind = body, headers.pop("Content-Type", "application/octet-stream")
        elif isinstance(body, str):
            data, kind = body.encode(), "text/html;charset=utf-8"
        else:
            data = json.dumps(body).encode()
            kind = ("application/problem+json" if status >= 400 and path.startswith(SITES)
                    else "application/json")
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, seen: Seen) -> tuple[int, Any, dict[str, str]]:
        fault = scripted_fault(self.faults, seen.path)
        if fault is not None:
            return fault.status, _problem(fault.status, "scripted failure"), dict(fault.headers)
        if not self._authorized(seen.headers.get("Authorization", "")):
            if seen.path.startswith(SITES):
                return 401, _problem(401, "The access token is missing or invalid."), {}
            return 401, "<html><body><h1>401 Unauthorized</h1></body></html>", \
                {"WWW-Authenticate": 'Basic realm="Sling (Development)"'}
        if seen.path.startswith(SITES) and self.role == "author":
            return self._sites(seen)
        if seen.path.startswith("/api/assets/") and seen.path.endswith(".json"):
            return self._assets(seen)
        marker = "/jcr:content/renditions/original"
        if seen.path.startswith("/content/dam/") and seen.path.endswith(marker):
            asset = self.store.assets.get(seen.path[:-len(marker)])
            if asset is not None and self.role == "author":
                return 200, asset.content, {"Content-Type": asset.mime_type}
        return 404, "<html><body>Resource at '" + seen.path + "' not found</body></html>", {}

    @staticmethod
    def _authorized(header: str) -> bool:
        basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return header in (f"Bearer {TOKEN}", f"Basic {basic}")

    # -- the Sites OpenAPI ----------------------------------------------------------------

    def _sites(self, seen: Seen) -> tuple[int, Any, dict[str, str]]:
        rest = seen.path[len(SITES):].strip("/")
        parts = rest.split("/") if rest else []
        if not parts:
            return self._sites_list(seen.query)
        fragment = next((f for f in self.store.fragments.values() if f.id == parts[0]), None)
        if fragment is None:
            return 404, _problem(404, f"Content fragment {parts[0]} not found."), {}
        if fragment.gone:
            return fragment.gone, _problem(fragment.gone, "The content fragment was "
                                           "deleted."), {}
        if len(parts) == 1:
            return 200, _sites_fragment(fragment), {"ETag": _etag(fragment)}
        if parts[1:] == ["tags"]:
            return 200, {"items": [{"id": tag, "title": tag.rsplit("/", 1)[-1]}
                                   for tag in fragment.tags]}, {}
        if parts[1:] == ["versions"]:
            items = [{"id": v.id, "title": v.title, "label": "", "comment": v.comment,
                      "created": _iso(v.created), "createdBy": v.by} for v in fragment.versions]
            return _paged(items, seen.query)
        if len(parts) == 3 and parts[1] == "versions":
            version = next((v for v in fragment.versions if v.id == parts[2]), None)
            if version is None:
                return 404, _problem(404, f"Version {parts[2]} not found."), {}
            return 200, {"id": version.id, "title": version.snapshot["title"],
                         "fields": version.snapshot["fields"],
                         "model": {"id": _model_id(fragment.model)}}, {}
        return 404, _problem(404, "No such resource."), {}

    def _sites_list(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        path = query.get("path", "/content/dam").rstrip("/")
        fragments = sorted(
            (f for f in self.store.fragments.values()
             if not f.gone and (f.path == path or f.path.startswith(path + "/"))),
            key=lambda f: f.path)
        return _paged([_sites_fragment(f) for f in fragments], query)

    # -- the Assets HTTP API --------------------------------------------------------------

    def _assets(self, seen: Seen) -> tuple[int, Any, dict[str, str]]:
        path = "/content/dam/" + seen.path[len("/api/assets/"):-len(".json")]
        fragment = self.store.fragments.get(path)
        if fragment is not None and fragment.gone:
            return fragment.gone, "<html><body>Gone</body></html>", {}
        if fragment is not None and self._visible(fragment):
            return 200, self._fragment_entity(fragment), {}
        asset = self.store.assets.get(path)
        if asset is not None and self.role == "author":
            return 200, self._asset_entity(asset), {}
        children = self._children(path)
        if not children:
            return 404, "<html><body>No asset or folder at " + path + "</body></html>", {}
        offset = int(seen.query.get("offset", "0"))
        limit = min(int(seen.query.get("limit", "20")), self.assets_page_cap)
        page = children[offset:offset + limit]
        links = [{"rel": ["self"], "href": self._api_url(path)},
                 {"rel": ["parent"], "href": self._api_url(path.rsplit("/", 1)[0])}]
        if offset + limit < len(children):
            links.append({"rel": ["next"], "href": self._api_url(path) +
                          f"?offset={offset + limit}&limit={limit}"})
        return 200, {
            "class": ["assets/folder"],
            "properties": {"name": path.rsplit("/", 1)[-1], "title": path.rsplit("/", 1)[-1],
                           "srn:paging": {"total": len(children), "offset": offset,
                                          "limit": limit}},
            "entities": page, "links": links,
        }, {}

    def _visible(self, fragment: Fragment) -> bool:
        return not fragment.gone and (self.role == "author" or fragment.live is not None)

    def _children(self, folder: str) -> list[dict]:
        names: dict[str, dict] = {}
        prefix = folder + "/"
        for path, fragment in self.store.fragments.items():
            if path.startswith(prefix) and self._visible(fragment):
                name, _, below = path[len(prefix):].partition("/")
                names.setdefault(name, self._folder_entity(prefix + name) if below
                                 else self._fragment_entity(fragment))
        if self.role == "author":
            for path, asset in self.store.assets.items():
                if path.startswith(prefix):
                    name, _, below = path[len(prefix):].partition("/")
                    names.setdefault(name, self._folder_entity(prefix + name) if below
                                     else self._asset_entity(asset))
        return [names[name] for name in sorted(names)]

    def _folder_entity(self, path: str) -> dict:
        name = path.rsplit("/", 1)[-1]
        return {"class": ["assets/folder"], "properties": {"name": name, "title": name},
                "links": [{"rel": ["self"], "href": self._api_url(path)}]}

    def _fragment_entity(self, fragment: Fragment) -> dict:
        snapshot = fragment.snapshot() if self.role == "author" else fragment.live
        assert snapshot is not None
        elements = fragment.elements or {
            f["name"]: _element(f) for f in snapshot["fields"]}
        properties = {
            "name": fragment.path.rsplit("/", 1)[-1],
            "title": snapshot["title"], "description": "", "contentFragment": True,
            "created": _millis(fragment.created), "createdBy": fragment.by,
            "modified": _millis(fragment.modified), "modifiedBy": fragment.by,
            "cq:model": {"path": fragment.model}, "elementsOrder": list(elements),
            "elements": elements,
            "metadata": {"cq:tags": list(fragment.tags), "dc:format": "text/html"},
            "srn:paging": {"total": 0, "offset": 0, "limit": 20},
        }
        if fragment.replication is not None:
            action, when, by = fragment.replication
            properties.update({"cq:lastReplicationAction": action,
                               "cq:lastReplicated": _ecma(when), "cq:lastReplicatedBy": by})
        return {"class": ["assets/asset"], "properties": properties,
                "links": [{"rel": ["self"], "href": self._api_url(fragment.path)}]}

    def _asset_entity(self, asset: Asset) -> dict:
        return {"class": ["assets/asset"],
                "properties": {"name": asset.path.rsplit("/", 1)[-1],
                               "metadata": dict(asset.metadata)},
                "links": [{"rel": ["self"], "href": self._api_url(asset.path)},
                          {"rel": ["content"], "href": self.url + quote(asset.path)}]}

    def _api_url(self, path: str) -> str:
        return f"{self.url}/api/assets/{quote(path[len('/content/dam/'):])}.json"


def _field(name: str, kind: str, values: list, mime_type: str | None = None) -> dict:
    entry = {"name": name, "type": kind, "multiple": len(values) > 1, "values": list(values)}
    if mime_type:
        entry["mimeType"] = mime_type
    return entry


def _element(field_: dict) -> dict:
    """An element as the Assets HTTP API writes it: a text element's `:type` is its MIME
    type, `string` for plain text."""
    return {"value": field_["values"] if field_["multiple"] else field_["values"][0],
            "title": field_["name"][:1].upper() + field_["name"][1:],
            "multiValue": field_["multiple"], ":type": field_.get("mimeType") or "string",
            "dataType": "string"}


def _sites_fragment(fragment: Fragment) -> dict:
    body = {
        "id": fragment.id, "path": fragment.path, "name": fragment.path.rsplit("/", 1)[-1],
        "title": fragment.title, "description": "",
        "model": {"id": _model_id(fragment.model)},
        "fields": copy.deepcopy(fragment.fields), "status": fragment.status,
        "created": {"at": _iso(fragment.created), "by": fragment.by},
        "modified": {"at": _iso(fragment.modified), "by": fragment.by},
    }
    if fragment.published is not None:
        body["published"] = {"at": _iso(fragment.published[0]), "by": fragment.published[1]}
    return body


def _paged(items: list, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    try:
        limit = int(query.get("limit", str(SITES_LIMIT)))
        offset = int(base64.urlsafe_b64decode(query["cursor"]).decode()) \
            if query.get("cursor") else 0
    except ValueError:
        return 400, _problem(400, "Invalid cursor or limit."), {}
    if not 1 <= limit <= SITES_LIMIT:
        return 400, _problem(400, f"limit must be between 1 and {SITES_LIMIT}."), {}
    body: dict[str, Any] = {"items": items[offset:offset + limit]}
    if offset + limit < len(items):
        body["cursor"] = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
    return 200, body, {}


def _problem(status: int, detail: str) -> dict:
    titles = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 410: "Gone",
              429: "Too Many Requests", 500: "Internal Server Error",
              503: "Service Unavailable"}
    return {"type": "about:blank", "title": titles.get(status, "Error"), "status": status,
            "detail": detail}


def _etag(fragment: Fragment) -> str:
    return f'W/"{fragment.id[:8]}-{fragment.revision}"'


def _model_id(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _millis(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _ecma(when: dt.datetime) -> str:
    return when.astimezone(AUTHOR_ZONE).strftime("%a %b %d %Y %H:%M:%S GMT%z")


def _ecma_parse(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%a %b %d %Y %H:%M:%S GMT%z").astimezone(dt.UTC)
