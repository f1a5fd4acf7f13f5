"""Message blocks and legal texts from Sitecore: Experience Edge GraphQL and the Layout Service.

Where the content is. Every q2c item is a Sitecore page (an item with a layout) under one
root (`Q2C_SITECORE_ROOT_PATH`), on a q2c template: `Q2C Message Block` (kind `blocks`) or
`Q2C Legal Text` (kind `legal`); `Q2C_SITECORE_TEMPLATES` renames them. Folders and items on
other templates under the root are ignored. The page's own fields say which q2c slot it
fills: `ContentId` (the q2c content id, such as `late_payment_nl`), `LegalCase` (legal texts:
`reverse_charge_eu`, `tax_exemption`, `late_payment`), `Placement` (blocks: `top` or
`bottom`), `Title`, and optional targeting in `Segments`, `Countries`, `Brands` and
`Channels` (single-line text, values separated by `|` or `,`). The body is the rich text of
the page's body component in its layout, as the Layout Service renders it: the first
component, depth first through the placeholders, with a `body` or `content` field (a page
without one falls back to a `Body` field on the page itself). The body is passed on exactly
as Sitecore serves it, as UTF-8 bytes: sanitizing is the registry's job.

Language versions are locales: the Sitecore language name (`en`, `de-DE`) as a q2c tag.
`Q2C_SITECORE_LANGUAGES` lists the languages read.

States. Experience Edge serves only what was published, so an item Edge returns is
published. It is approved when its `__Workflow state` is empty (no workflow) or one of the
final states in `Q2C_SITECORE_FINAL_STATES` (default: the Approved state of Sitecore's Sample
Workflow); a published item in any other state is read as a draft, never approved.
`approved_by` and `approved_at` are `__Updated by` and `__Updated`: the final workflow
command saves the item, so for an item in a final state they name the approver and the
time. Layout Service data from the `master` database or in editing mode (`pageEditing`) is
a draft whatever else it says; `fetch` with a version other than the published one reads it
in editing mode (`sc_mode=edit&sc_version=N`). An item Edge answers `null` for, or the
Layout Service answers 404 for, is gone: `fetch` raises CmsNotFound and the change listing
reports it deleted, which the registry reads as retired.

Versions. Experience Edge keeps only the published version of each language version; its
`version` is the source version. `versions()` lists it and, where the Layout Service in
editing mode shows a newer version, that draft too. Older versions live on in q2c's store.

Personalization. Edge lists a page's personalization variants (`personalization {
variantIds }`), and the layout carries, for each personalized component, what each variant
shows (`experiences`, keyed by variant id). Each variant is its own q2c item competing in
the same slot: external id `<item id>:<variant id>`, content id
`<ContentId>_<variant id as a name>`, metadata `slot` = `ContentId`, body what that variant
shows (the default body when the variant leaves the body component alone). Its targeting
is the page's targeting fields with the variant's audience laid over them, field by field.
Variant ids name audiences defined in Sitecore Personalize, so `Q2C_SITECORE_VARIANTS`
says what each means in q2c: `green=segment:enterprise;red=country:DE|AT;purple=brand:contoso,
channel:email`. A variant it does not name is left out (with a warning) rather than shown to
everyone; a variant that hides the body component has no q2c counterpart (CmsNotFound).

Changes. `changes_since` lists every q2c page under the root with a `search` query
(`_path CONTAINS <root id>`, the languages, optionally `_templates`), page by page with
`first`/`after` and `pageInfo { hasNext endCursor }`. Edge cannot list deletions and its
`__Updated` is the edit time, not the publish time, so the cursor keeps each listed
item's version and `__Updated` as of the last complete listing: an item is reported when
new or different, and an item no longer listed is reported deleted. A change to a
component datasource that leaves the page unchanged is caught by the publish webhook
(`LayoutData` updates) or the registry's reconcile, which compares body hashes.

Publish events. Experience Edge webhooks (execution mode `OnUpdate`) POST
`{"invocation_id", "updates": [{"identifier", "entity_definition", "operation",
"entity_culture"}], "continues"}`. Sitecore signs nothing: a webhook sends the custom
headers it was created with, which Sitecore documents for authentication. q2c therefore
accepts an event only when the header `Q2C_SITECORE_WEBHOOK_HEADER` (default
`X-Q2C-Webhook-Secret`) equals `Q2C_SITECORE_WEBHOOK_SECRET` (compared in constant time);
create the webhook with that header. `Item` and `LayoutData` updates (`<id>-layout`) become
one event per item and language; other entities (dictionary, site) are skipped.

API reference: https://doc.sitecore.com/xmc/en/developers/xm-cloud/the-experience-edge-schema.html
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import logging
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from q2c.content.cms.base import (
    ChangePage,
    CmsError,
    CmsItem,
    CmsNotFound,
    CmsUnavailable,
    EventRejected,
    ItemRef,
    PublishEvent,
    cms_client_options,
)
from q2c.content.legal_cases import CASES
from q2c.content.registry import CHANNELS, PLACEMENTS, TARGETING_FIELDS, normalize_language
from q2c.sources.connectors.config import EnvValue, read_env
from q2c.sources.connectors.errors import (
    ConfigurationError,
    ConnectorError,
    ProviderError,
    TransientError,
)
from q2c.sources.connectors.http import HttpClient, Reply

log = logging.getLogger(__name__)

SOURCE = "sitecore"
PROVIDER = "Sitecore"
GRAPHQL_PATH = "/api/graphql/v1"
LAYOUT_PATH = "/sitecore/api/layout/render/jss"
# The Approved state of Sitecore's Sample Workflow, the final state most solutions keep.
SAMPLE_WORKFLOW_APPROVED = "FCA998C50CC34F9194D80A4E6CAECE88"
DEFAULT_TEMPLATES = "Q2C Message Block=blocks;Q2C Legal Text=legal"
DEFAULT_WEBHOOK_HEADER = "X-Q2C-Webhook-Secret"
# Page fields read from every q2c item, by the alias the GraphQL queries give them.
ITEM_FIELDS = {
    "contentId": "ContentId", "legalCase": "LegalCase", "placement": "Placement",
    "title": "Title", "segments": "Segments", "countries": "Countries", "brands": "Brands",
    "channels": "Channels", "pageBody": "Body",
    "updated": "__Updated", "updatedBy": "__Updated by", "workflowState": "__Workflow state",
}
TARGETING_ALIASES = {"segment": "segments", "country": "countries", "brand": "brands",
                     "channel": "channels"}
BODY_FIELDS = ("body", "content")
TITLE_FIELDS = ("heading", "title")
WEBHOOK_ENTITIES = ("Item", "LayoutData")
_GUID = re.compile(r"^[0-9A-F]{32}$")
_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
_CURSOR_PREFIX = "sc1."

_REF_SELECTION = """
      id
      name
      path
      version
      language { name }
      template { id name }
      updated: field(name: "__Updated") { value }
      personalization { variantIds }
"""


def _field_selection() -> str:
    return "\n".join(f'      {alias}: field(name: "{name}") {{ value }}'
                     for alias, name in ITEM_FIELDS.items())


ITEM_QUERY = f"""
query Q2cItem($path: String!, $language: String!) {{
  item(path: $path, language: $language) {{
      id
      name
      displayName
      path
      version
      language {{ name }}
      template {{ id name }}
      personalization {{ variantIds }}
{_field_selection()}
  }}
}}
"""

ROOT_QUERY = """
query Q2cRoot($path: String!, $language: String!) {
  item(path: $path, language: $language) { id path }
}
"""


@dataclass(frozen=True)
class _Meta:
    """What q2c reads of one language version of a page, from Edge or from layout data."""

    guid: str
    locale: str
    version: str
    path: str
    template: str
    fields: Mapping[str, str]
    variant_ids: tuple[str, ...]
    updated: dt.datetime | None
    display_name: str


@dataclass
class _Listing:
    """The change cursor: fingerprints of the last complete listing, and a listing under
    way (Edge's cursor for its next page and the fingerprints seen so far)."""

    known: dict[str, str] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)
    after: str | None = None

    def encode(self) -> str:
        raw = json.dumps({"known": self.known, "seen": self.seen, "after": self.after},
                         sort_keys=True, separators=(",", ":")).encode()
        return _CURSOR_PREFIX + base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode()

    @classmethod
    def decode(cls, cursor: str | None) -> _Listing:
        if not cursor:
            return cls()
        try:
            if not cursor.startswith(_CURSOR_PREFIX):
                raise ValueError("no prefix")
            raw = zlib.decompress(base64.urlsafe_b64decode(cursor[len(_CURSOR_PREFIX):]))
            data = json.loads(raw)
            return cls(dict(data["known"]), dict(data["seen"]), data["after"])
        except (ValueError, KeyError, TypeError, zlib.error, binascii.Error) as exc:
            raise CmsError(
                f"{PROVIDER}: the change cursor {cursor[:24]!r}... is not one this connector "
                "wrote; list again from the start (no cursor)"
            ) from exc


class SitecoreConnector:
    """q2c content from Sitecore Experience Edge and the Layout Service (see module doc)."""

    source = SOURCE

    def __init__(
        self,
        edge: HttpClient,
        layout: HttpClient,
        api_key: str,
        root_path: str,
        languages: tuple[str, ...] = ("en",),
        templates: Mapping[str, str] | None = None,
        template_ids: tuple[str, ...] = (),
        final_states: tuple[str, ...] = (SAMPLE_WORKFLOW_APPROVED,),
        variants: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
        webhook_secret: str | None = None,
        webhook_header: str = DEFAULT_WEBHOOK_HEADER,
        site: str | None = None,
        page_size: int = 50,
    ) -> None:
        self.edge = edge
        self.layout = layout
        self.api_key = api_key
        self.root_path = root_path
        if not languages:
            raise CmsError("Q2C_SITECORE_LANGUAGES names no language; list the Sitecore "
                           "languages to read, e.g. en,de-DE")
        self.languages = languages
        self.templates = dict(templates or _templates(DEFAULT_TEMPLATES))
        self.template_ids = tuple(_guid(t, "Q2C_SITECORE_TEMPLATE_IDS") for t in template_ids)
        self.final_states = frozenset(_guid(s, "Q2C_SITECORE_FINAL_STATES")
                                      for s in final_states)
        self.variants = dict(variants or {})
        self.webhook_secret = webhook_secret
        self.webhook_header = webhook_header
        self.site = site
        self.page_size = page_size
        self._root_id: str | None = None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, page_size: int | None = None,
        **client_options: Any,
    ) -> SitecoreConnector:
        """Settings from the environment (variables in the module doc and docs/cms.md).

        Required: Q2C_SITECORE_EDGE_URL (scheme and host of Experience Edge or the CD host
        serving `/api/graphql/v1`), Q2C_SITECORE_API_KEY, Q2C_SITECORE_ROOT_PATH.
        Optional: Q2C_SITECORE_LAYOUT_URL (Layout Service host; default the Edge URL),
        Q2C_SITECORE_WEBHOOK_SECRET and Q2C_SITECORE_WEBHOOK_HEADER, Q2C_SITECORE_LANGUAGES,
        Q2C_SITECORE_FINAL_STATES, Q2C_SITECORE_TEMPLATES, Q2C_SITECORE_TEMPLATE_IDS,
        Q2C_SITECORE_VARIANTS, Q2C_SITECORE_SITE, Q2C_SITECORE_PAGE_SIZE.
        `client_options` go to both HttpClients (retry, sleep, limiter, timeout).
        """
        try:
            values = read_env(PROVIDER, {
                "edge_url": EnvValue("Q2C_SITECORE_EDGE_URL",
                                     what="the Experience Edge URL, e.g. "
                                          "https://edge.sitecorecloud.io"),
                "api_key": EnvValue("Q2C_SITECORE_API_KEY",
                                    what="an Experience Edge delivery API key"),
                "root_path": EnvValue("Q2C_SITECORE_ROOT_PATH",
                                      what="the item path holding the q2c content"),
                "layout_url": EnvValue("Q2C_SITECORE_LAYOUT_URL", ""),
                "secret": EnvValue("Q2C_SITECORE_WEBHOOK_SECRET", ""),
                "header": EnvValue("Q2C_SITECORE_WEBHOOK_HEADER", DEFAULT_WEBHOOK_HEADER),
                "languages": EnvValue("Q2C_SITECORE_LANGUAGES", "en"),
                "final_states": EnvValue("Q2C_SITECORE_FINAL_STATES",
                                         SAMPLE_WORKFLOW_APPROVED),
                "templates": EnvValue("Q2C_SITECORE_TEMPLATES", DEFAULT_TEMPLATES),
                "template_ids": EnvValue("Q2C_SITECORE_TEMPLATE_IDS", ""),
                "variants": EnvValue("Q2C_SITECORE_VARIANTS", ""),
                "site": EnvValue("Q2C_SITECORE_SITE", ""),
                "page_size": EnvValue("Q2C_SITECORE_PAGE_SIZE", "50"),
            }, env)
        except ConfigurationError as exc:
            raise CmsError(str(exc).replace("pull is", "content source is")) from exc
        key = values["api_key"]
        hint = ("Set Q2C_SITECORE_API_KEY to an API key that {what} accepts for this "
                "environment.")
        edge = HttpClient(
            provider="Sitecore Experience Edge", base_url=values["edge_url"],
            headers={"sc_apikey": key, "Accept": "application/json"},
            auth_hint=hint.format(what="Experience Edge (header sc_apikey)"),
            error_text=_error_text, secrets=(key,), **cms_client_options(client_options),
        )
        layout = HttpClient(
            provider="Sitecore Layout Service",
            base_url=values["layout_url"] or values["edge_url"],
            headers={"Accept": "application/json"},
            auth_hint=hint.format(what="the Layout Service at Q2C_SITECORE_LAYOUT_URL "
                                       "(query parameter sc_apikey)"),
            error_text=_error_text, secrets=(key,), **cms_client_options(client_options),
        )
        try:
            size = int(page_size or values["page_size"])
        except ValueError as exc:
            raise CmsError(
                f"Q2C_SITECORE_PAGE_SIZE must be a whole number, got {values['page_size']!r}"
            ) from exc
        return cls(
            edge, layout, key, values["root_path"],
            languages=_names(values["languages"]),
            templates=_templates(values["templates"]),
            template_ids=_names(values["template_ids"]),
            final_states=_names(values["final_states"]),
            variants=parse_variants(values["variants"]),
            webhook_secret=values["secret"] or None, webhook_header=values["header"],
            site=values["site"] or None, page_size=size,
        )

    # changes

    def changes_since(self, cursor: str | None) -> Iterator[ChangePage]:
        """Pages of q2c items new, changed or gone since the listing `cursor` ended."""
        listing = _Listing.decode(cursor)
        root = self._root()
        query = self._search_query(root)
        cursors_seen = {listing.after} if listing.after else set()
        while True:
            data = self._graphql(query, {"first": self.page_size, "after": listing.after},
                                 "search")
            search = data.get("search") or {}
            refs = []
            for result in search.get("results") or []:
                for key, fingerprint, ref in self._refs_of(result):
                    listing.seen[key] = fingerprint
                    if listing.known.get(key) != fingerprint:
                        refs.append(ref)
            refs.sort(key=lambda ref: (ref.modified_at, ref.external_id, ref.locale))
            page_info = search.get("pageInfo") or {}
            next_cursor = page_info.get("endCursor")
            if page_info.get("hasNext") and next_cursor:
                if next_cursor in cursors_seen:
                    raise CmsError(f"{PROVIDER}: Experience Edge answered the page cursor "
                                   f"{next_cursor!r} again; the listing cannot go on")
                cursors_seen.add(next_cursor)
                listing.after = next_cursor
                yield ChangePage(tuple(refs), listing.encode(), True)
                continue
            gone = _deleted_refs(listing.known, listing.seen)
            done = _Listing(known=dict(listing.seen))
            log.info("%s: listing under %s done: %d item(s), %d gone",
                     PROVIDER, self.root_path, len(listing.seen), len(gone))
            yield ChangePage(tuple(refs) + gone, done.encode(), False)
            return

    def _refs_of(self, result: Mapping[str, Any]) -> Iterator[tuple[str, str, ItemRef]]:
        template = str((result.get("template") or {}).get("name") or "")
        if template not in self.templates:
            return
        guid = _guid(result.get("id"), "search result id")
        locale = normalize_language((result.get("language") or {}).get("name"))
        version = str(result.get("version") or "")
        updated_raw = _value(result.get("updated"))
        modified = _sitecore_time(updated_raw) or _now()
        fingerprint = f"{version}|{updated_raw}"
        ids = [guid]
        for variant in _variant_ids(result):
            if variant in self.variants:
                ids.append(f"{guid}:{variant}")
            else:
                log.warning(
                    "%s: item %s (%s) has personalization variant %r that "
                    "Q2C_SITECORE_VARIANTS does not name; it is left out", PROVIDER,
                    result.get("path") or guid, locale, variant,
                )
        for external_id in ids:
            yield (f"{external_id}|{locale}", fingerprint,
                   ItemRef(external_id, locale, version, modified))

    def _search_query(self, root: str) -> str:
        predicates = [_predicate("_path", root, "CONTAINS"),
                      _any_of("_language", self.languages, "EQ")]
        if self.template_ids:
            predicates.append(_any_of("_templates", self.template_ids, "CONTAINS"))
        where = "{ AND: [ " + " ".join(predicates) + " ] }"
        return f"""
query Q2cChanges($first: Int!, $after: String) {{
  search(
    where: {where}
    first: $first
    after: $after
    orderBy: {{ name: "__Updated", direction: ASC }}
  ) {{
    total
    pageInfo {{ hasNext endCursor }}
    results {{{_REF_SELECTION}    }}
  }}
}}
"""

    def _root(self) -> str:
        if self._root_id is None:
            data = self._graphql(ROOT_QUERY, {"path": self.root_path,
                                              "language": self.languages[0]}, "item")
            item = data.get("item")
            if not item:
                raise CmsError(
                    f"{PROVIDER}: Experience Edge has no item at Q2C_SITECORE_ROOT_PATH "
                    f"{self.root_path!r} in language {self.languages[0]!r}; check the path "
                    "and that the root item is published"
                )
            self._root_id = _guid(item.get("id"), "Q2C_SITECORE_ROOT_PATH item id")
        return self._root_id

    # items

    def fetch(self, external_id: str, locale: str, version: str | None = None) -> CmsItem:
        """The published item (approved or not, by its workflow state), or with `version`
        other than the published one, that version as a draft from editing mode."""
        guid, variant = _split_id(external_id)
        meta = self._edge_item(guid, locale)
        if version is not None and (meta is None or str(version) != meta.version):
            return self._draft(guid, variant, locale, str(version))
        if meta is None:
            raise CmsNotFound(
                f"{PROVIDER}: item {guid} ({locale}) is not on Experience Edge: removed or "
                "unpublished"
            )
        self._kind(meta)
        page = self._layout_data(guid, locale, None)
        route = page["route"]
        editing = _is_editing(page)
        layout_version = str(route.get("itemVersion") or meta.version)
        if not editing and layout_version != meta.version:
            # A problem of this item only (a publish under way, or a delivery host that
            # missed it): the other items and the reconcile still run.
            raise CmsError(
                f"{PROVIDER}: item {meta.path} ({locale}) is version {meta.version} on "
                f"Experience Edge and {layout_version} in the Layout Service: a publish is "
                "under way or the delivery host missed it (republish the item if this "
                "lasts); the content in force stays until a run reads them alike"
            )
        if editing:
            log.warning("%s: the Layout Service answered item %s (%s) from %s in editing "
                        "mode; read as a draft (point Q2C_SITECORE_LAYOUT_URL at a delivery "
                        "host)", PROVIDER, meta.path, locale, route.get("databaseName"))
            status, source_status = "draft", _editing_status(page, layout_version)
        else:
            status, source_status = self._published_state(meta)
        return self._item(meta, variant, route, status, source_status)

    def versions(self, external_id: str, locale: str) -> list[ItemRef]:
        """The published version, and a newer one in editing mode where there is one."""
        guid, variant = _split_id(external_id)
        meta = self._edge_item(guid, locale)
        refs = []
        if meta is not None:
            refs.append(ItemRef(external_id, locale, meta.version, meta.updated or _now()))
        try:
            draft = self._layout_data(guid, locale, "")
        except CmsNotFound:
            draft = None
        except CmsError as exc:
            if meta is None:
                raise
            log.info("%s: no editing-mode data for item %s (%s): %s", PROVIDER, guid,
                     locale, exc)
            draft = None
        if draft is not None:
            latest = str(draft["route"].get("itemVersion") or "")
            if latest and (meta is None or _number(latest) > _number(meta.version)):
                refs.append(ItemRef(external_id, locale, latest, _now()))
        if not refs:
            raise CmsNotFound(f"{PROVIDER}: item {guid} ({locale}) has no version")
        return refs

    def _published_state(self, meta: _Meta) -> tuple[str, str]:
        state = meta.fields.get("workflowState") or ""
        if not state:
            return "approved", "published"
        guid = _guid(state, f"item {meta.path} field __Workflow state")
        if guid in self.final_states:
            return "approved", f"published; workflow state {_braced(guid)}"
        return "draft", f"workflow state {_braced(guid)} (not final)"

    def _draft(self, guid: str, variant: str | None, locale: str, version: str) -> CmsItem:
        page = self._layout_data(guid, locale, version)
        route = page["route"]
        got = str(route.get("itemVersion") or "")
        if got != version:
            raise CmsNotFound(f"{PROVIDER}: item {guid} ({locale}) has no version {version} "
                              f"(editing mode answered version {got or 'none'})")
        meta = _meta_of_route(guid, locale, page)
        return self._item(meta, variant, route, "draft", _editing_status(page, version))

    def _item(
        self, meta: _Meta, variant: str | None, route: Mapping[str, Any], status: str,
        source_status: str,
    ) -> CmsItem:
        where = f"{PROVIDER} item {meta.path or meta.guid} ({meta.locale})"
        kind = self._kind(meta)
        content_id = (meta.fields.get("contentId") or "").strip()
        if not _SLUG.match(content_id):
            raise CmsError(f"{where}: field ContentId must be a name such as late_payment_nl "
                           f"(got {content_id!r})")
        case = placement = None
        if kind == "legal":
            case = (meta.fields.get("legalCase") or "").strip()
            if case not in CASES:
                raise CmsError(f"{where}: field LegalCase must be one of {', '.join(CASES)} "
                               f"(got {case!r})")
        else:
            placement = (meta.fields.get("placement") or "").strip().lower()
            if placement not in PLACEMENTS:
                raise CmsError(f"{where}: field Placement must be one of "
                               f"{', '.join(PLACEMENTS)} (got {placement!r})")
        targeting = _field_targeting(meta.fields, where)
        external_id, metadata = meta.guid, {
            "path": meta.path, "template": meta.template, "variant_ids": list(meta.variant_ids),
            "workflow_state": meta.fields.get("workflowState") or None,
            "updated_by": meta.fields.get("updatedBy") or None,
            "database": route.get("databaseName"),
        }
        if variant is not None:
            if variant not in meta.variant_ids:
                raise CmsNotFound(f"{where} no longer has personalization variant {variant!r}")
            audience = self.variants.get(variant)
            if audience is None:
                raise CmsError(f"{where}: personalization variant {variant!r} has no q2c "
                               "targeting; name it in Q2C_SITECORE_VARIANTS")
            targeting = {**targeting, **audience}
            external_id = f"{meta.guid}:{variant}"
            metadata.update(variant=variant, slot=content_id)
            content_id = f"{content_id}_{_variant_slug(variant)}"
        fields = _body_fields(route, variant, where)
        if fields is None:
            body = meta.fields.get("pageBody")
            if body is None:
                raise CmsError(f"{where} has no body: no component in its layout has a "
                               f"{' or '.join(BODY_FIELDS)} field and the page has no Body")
            title_field = None
        else:
            body = _value(_pick(fields, BODY_FIELDS))
            title_field = _value(_pick(fields, TITLE_FIELDS))
        approved = status == "approved"
        updated_by = meta.fields.get("updatedBy") or None
        return CmsItem(
            source=SOURCE, external_id=external_id, locale=meta.locale,
            source_version=meta.version, source_status=source_status, status=status,
            kind=kind, content_id=content_id,
            title=meta.fields.get("title") or title_field or meta.display_name,
            body=(body or "").encode("utf-8"), media_type="text/html",
            modified_at=meta.updated or _now(),
            approved_by=updated_by if approved else None,
            approved_at=meta.updated if approved else None,
            targeting=targeting, case=case, placement=placement, metadata=metadata,
        )

    def _kind(self, meta: _Meta) -> str:
        kind = self.templates.get(meta.template)
        if kind is None:
            raise CmsError(
                f"{PROVIDER} item {meta.path or meta.guid} ({meta.locale}) is on template "
                f"{meta.template!r}, not a q2c template ({', '.join(sorted(self.templates))}); "
                "set Q2C_SITECORE_TEMPLATES"
            )
        return kind

    def _edge_item(self, guid: str, locale: str) -> _Meta | None:
        data = self._graphql(ITEM_QUERY, {"path": _braced(guid), "language": locale}, "item")
        item = data.get("item")
        if not item:
            return None
        fields = {alias: _value(item.get(alias)) for alias in ITEM_FIELDS}
        return _Meta(
            guid=_guid(item.get("id"), f"item {guid} id"),
            locale=normalize_language((item.get("language") or {}).get("name") or locale),
            version=str(item.get("version") or ""),
            path=str(item.get("path") or ""),
            template=str((item.get("template") or {}).get("name") or ""),
            fields={k: v for k, v in fields.items() if v is not None},
            variant_ids=_variant_ids(item),
            updated=_sitecore_time(fields.get("updated")),
            display_name=str(item.get("displayName") or item.get("name") or ""),
        )

    def _layout_data(self, guid: str, locale: str, version: str | None) -> dict:
        """Layout Service JSON of one item: normal mode (`version` None), or editing mode
        at `version` (empty: the latest version)."""
        params = {"item": _braced(guid), "sc_lang": locale, "sc_apikey": self.api_key}
        if self.site:
            params["sc_site"] = self.site
        if version is not None:
            params["sc_mode"] = "edit"
            if version:
                params["sc_version"] = version
        what = ("" if version is None else
                f" in editing mode, version {version or 'latest'}")
        try:
            reply = self._call(self.layout, "GET", LAYOUT_PATH, params=params)
        except CmsNotFound as exc:
            raise CmsNotFound(f"{PROVIDER}: the Layout Service has no item {guid} ({locale})"
                              f"{what}: it answered 404 (no version {version})"
                              if version else
                              f"{PROVIDER}: the Layout Service has no item {guid} ({locale})"
                              f"{what}: it answered 404") from exc
        sitecore = (reply.data or {}).get("sitecore") if isinstance(reply.data, dict) else None
        route = (sitecore or {}).get("route")
        if not route:
            raise CmsNotFound(f"{PROVIDER}: the Layout Service has no route for item {guid} "
                              f"({locale}){what}")
        return sitecore

    # publish events

    def verify_event(self, headers: Mapping[str, str], body: bytes) -> PublishEvent:
        """The first item update of a webhook call; `verify_events` gives every one."""
        events = self.verify_events(headers, body)
        if not events:
            raise EventRejected(
                f"{PROVIDER}: the webhook call carries no Item or LayoutData update (an OnEnd "
                "webhook says only that a publish ended); create it with executionMode "
                "OnUpdate, or let the reconcile pick the changes up"
            )
        return events[0]

    def verify_events(self, headers: Mapping[str, str], body: bytes) -> list[PublishEvent]:
        """Every item and language an Experience Edge webhook call names, after its shared
        secret header checks out; an empty list for a call naming no item."""
        self._check_secret(headers)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventRejected(f"{PROVIDER}: the webhook body is not JSON ({exc})") from exc
        if not isinstance(payload, dict):
            raise EventRejected(f"{PROVIDER}: the webhook body is not a JSON object")
        invocation = str(payload.get("invocation_id") or "")
        updates = payload.get("updates") or []
        if not isinstance(updates, list):
            raise EventRejected(f"{PROVIDER}: webhook field `updates` is not a list")
        received = _now()
        events: dict[tuple[str, str | None], PublishEvent] = {}
        for index, update in enumerate(updates):
            if not isinstance(update, dict):
                raise EventRejected(f"{PROVIDER}: webhook `updates[{index}]` is not an object")
            if update.get("entity_definition") not in WEBHOOK_ENTITIES:
                continue
            identifier = str(update.get("identifier") or "").removesuffix("-layout")
            try:
                guid = _guid(identifier, f"webhook updates[{index}].identifier")
            except CmsError as exc:
                raise EventRejected(str(exc)) from exc
            locale = normalize_language(update.get("entity_culture")) or None
            action = str(update.get("operation") or "update").lower()
            events[(guid, locale)] = PublishEvent(
                source=SOURCE, external_id=guid, action=action, received_at=received,
                locale=locale, event_id=f"{invocation}/{guid}/{locale or '*'}",
            )
        return list(events.values())

    def _check_secret(self, headers: Mapping[str, str]) -> None:
        if not self.webhook_secret:
            raise EventRejected(
                f"{PROVIDER}: Q2C_SITECORE_WEBHOOK_SECRET is not set, so no webhook call can "
                f"be trusted; set it and create the Edge webhook with the header "
                f"{self.webhook_header} carrying the same value"
            )
        wanted = self.webhook_header.lower()
        given = next((v for k, v in headers.items() if k.lower() == wanted), None)
        if given is None:
            raise EventRejected(f"{PROVIDER}: the webhook call has no {self.webhook_header} "
                                "header; create the Edge webhook with that header")
        if not hmac.compare_digest(given.encode(), self.webhook_secret.encode()):
            raise EventRejected(f"{PROVIDER}: the webhook header {self.webhook_header} does "
                                "not match Q2C_SITECORE_WEBHOOK_SECRET")

    # transport

    def _graphql(self, query: str, variables: Mapping[str, Any], wanted: str) -> dict:
        reply = self._call(self.edge, "POST", GRAPHQL_PATH,
                           body={"query": query, "variables": dict(variables)})
        data = reply.data if isinstance(reply.data, dict) else {}
        errors = data.get("errors") or []
        result = data.get("data")
        if errors and (not isinstance(result, dict) or result.get(wanted) is None):
            messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                                 for e in errors)
            raise CmsError(f"{PROVIDER}: Experience Edge refused the {wanted} query: "
                           f"{messages}")
        if not isinstance(result, dict):
            raise CmsError(f"{PROVIDER}: Experience Edge answered the {wanted} query "
                           "without data; check Q2C_SITECORE_EDGE_URL points at "
                           f"{GRAPHQL_PATH}")
        return result

    def _call(self, client: HttpClient, method: str, path: str, **kwargs: Any) -> Reply:
        try:
            return client.request(method, path, **kwargs)
        except TransientError as exc:
            raise CmsUnavailable(str(exc)) from exc
        except ProviderError as exc:
            if exc.status in (404, 410):
                raise CmsNotFound(str(exc)) from exc
            raise CmsError(str(exc)) from exc
        except ConnectorError as exc:
            raise CmsError(str(exc)) from exc


# settings


def parse_variants(text: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """`green=segment:enterprise;red=country:DE|AT,channel:email` as variant -> targeting."""
    variants: dict[str, dict[str, tuple[str, ...]]] = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        variant, sep, spec = entry.partition("=")
        if not sep or not variant.strip() or not spec.strip():
            raise CmsError(f"Q2C_SITECORE_VARIANTS: {entry!r} is not variant=field:value "
                           "(e.g. green=segment:enterprise)")
        targeting: dict[str, tuple[str, ...]] = {}
        for clause in spec.split(","):
            name, sep, values = clause.partition(":")
            name = name.strip().lower()
            if not sep or name not in TARGETING_FIELDS:
                raise CmsError(f"Q2C_SITECORE_VARIANTS: {clause.strip()!r} in {entry!r} "
                               f"must be field:value with field one of "
                               f"{', '.join(TARGETING_FIELDS)}")
            targeting[name] = _normalized(name, values.split("|"),
                                          f"Q2C_SITECORE_VARIANTS {variant.strip()}")
        variants[variant.strip()] = targeting
    return variants


def _templates(text: str) -> dict[str, str]:
    templates = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, kind = entry.rpartition("=")
        if not sep or kind.strip() not in ("blocks", "legal") or not name.strip():
            raise CmsError(f"Q2C_SITECORE_TEMPLATES: {entry!r} must be "
                           "`template name=blocks` or `template name=legal`")
        templates[name.strip()] = kind.strip()
    return templates


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# reading Sitecore's answers


def _error_text(data: Any, text: str) -> str:
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                             for e in errors)
        for key in ("message", "Message", "error"):
            if data.get(key):
                return str(data[key])
    return text[:300] if text else "no error text"


def _guid(value: object, what: str) -> str:
    """An item id in Sitecore's `N` form (32 upper-case hex digits), from any of its forms."""
    text = str(value or "").strip().strip("{}").replace("-", "").upper()
    if not _GUID.match(text):
        raise CmsError(f"{PROVIDER}: {what} {value!r} is not a Sitecore item id (a GUID)")
    return text


def _braced(guid: str) -> str:
    return "{" + f"{guid[:8]}-{guid[8:12]}-{guid[12:16]}-{guid[16:20]}-{guid[20:]}" + "}"


def _split_id(external_id: str) -> tuple[str, str | None]:
    guid, _, variant = str(external_id).partition(":")
    return _guid(guid, "external id"), (variant or None)


def _variant_slug(variant: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", variant.lower()).strip("_")
    return slug or "variant"


def _variant_ids(item: Mapping[str, Any]) -> tuple[str, ...]:
    personalization = item.get("personalization") or {}
    return tuple(str(v) for v in personalization.get("variantIds") or () if v)


def _value(node: Any) -> str | None:
    """The `value` of a field node (`{"value": ...}`), None for a missing field."""
    if node is None:
        return None
    if isinstance(node, dict):
        value = node.get("value")
        return None if value is None else str(value)
    return str(node)


def _pick(fields: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    lowered = {str(k).lower(): v for k, v in fields.items()}
    return next((lowered[name] for name in names if name in lowered), None)


def _sitecore_time(text: str | None) -> dt.datetime | None:
    """Sitecore's `20261204T101500Z` (or ISO 8601) as a UTC datetime."""
    if not text:
        return None
    raw = text.strip()
    match = re.fullmatch(r"(\d{8}T\d{6})(?:\.\d+)?Z?", raw)
    try:
        if match:
            moment = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S")
        else:
            moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        log.warning("%s: __Updated %r is not a Sitecore date; ignored", PROVIDER, text)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _number(version: str) -> int:
    try:
        return int(version)
    except ValueError:
        return -1


def _predicate(name: str, value: str, operator: str) -> str:
    # A GraphQL string literal takes the same escapes as JSON.
    return f"{{ name: {json.dumps(name)}, value: {json.dumps(value)}, operator: {operator} }}"


def _any_of(name: str, values: tuple[str, ...], operator: str) -> str:
    predicates = [_predicate(name, value, operator) for value in values]
    return predicates[0] if len(predicates) == 1 else "{ OR: [ " + " ".join(predicates) + " ] }"


def _deleted_refs(known: Mapping[str, str], seen: Mapping[str, str]) -> tuple[ItemRef, ...]:
    now = _now()
    refs = []
    for key in sorted(set(known) - set(seen)):
        external_id, _, locale = key.rpartition("|")
        version = known[key].partition("|")[0]
        refs.append(ItemRef(external_id, locale, version, now, deleted=True))
    return tuple(refs)


def _is_editing(page: Mapping[str, Any]) -> bool:
    context = page.get("context") or {}
    route = page.get("route") or {}
    return bool(context.get("pageEditing")) or str(route.get("databaseName") or "").lower() \
        == "master"


def _editing_status(page: Mapping[str, Any], version: str) -> str:
    database = (page.get("route") or {}).get("databaseName") or "unknown database"
    return f"editing ({database}, version {version})"


def _meta_of_route(guid: str, locale: str, page: Mapping[str, Any]) -> _Meta:
    """What layout data says of a page: route fields stand in for Edge's fields, and the
    body component's experiences for Edge's variant ids."""
    route = page.get("route") or {}
    fields = route.get("fields") or {}
    component = _body_component(route.get("placeholders") or {}) or {}
    values = {alias: _value(fields.get(name)) for alias, name in ITEM_FIELDS.items()}
    return _Meta(
        guid=guid,
        locale=normalize_language(route.get("itemLanguage") or locale),
        version=str(route.get("itemVersion") or ""),
        path=str((page.get("context") or {}).get("itemPath") or route.get("name") or guid),
        template=str(route.get("templateName") or ""),
        fields={k: v for k, v in values.items() if v is not None},
        variant_ids=tuple(component.get("experiences") or ()),
        updated=None,
        display_name=str(route.get("displayName") or route.get("name") or ""),
    )


def _body_fields(route: Mapping[str, Any], variant: str | None,
                 where: str) -> Mapping[str, Any] | None:
    """The fields of the body component as `variant` (None: the default) shows it."""
    component = _body_component(route.get("placeholders") or {})
    if component is None:
        return None
    shown: Mapping[str, Any] | None = component
    experiences = component.get("experiences") or {}
    if variant is not None and variant in experiences:
        shown = experiences[variant]
    elif variant is None and not component.get("componentName") and experiences:
        shown = None
    if not shown or (shown.get("componentName") is None and shown.get("dataSource") is None
                     and not shown.get("fields")):
        raise CmsNotFound(f"{where}: {'variant ' + repr(variant) if variant else 'the default'}"
                          " hides the body component; nothing to print for that audience")
    fields = shown.get("fields") or {}
    if _pick(fields, BODY_FIELDS) is None:
        raise CmsError(f"{where}: the body component of variant {variant!r} has no "
                       f"{' or '.join(BODY_FIELDS)} field")
    return fields


def _body_component(placeholders: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for components in placeholders.values():
        for component in components or ():
            if not isinstance(component, dict):
                continue
            if _pick(component.get("fields") or {}, BODY_FIELDS) is not None:
                return component
            for experience in (component.get("experiences") or {}).values():
                if experience and _pick(experience.get("fields") or {}, BODY_FIELDS) is not None:
                    return component
            nested = _body_component(component.get("placeholders") or {})
            if nested is not None:
                return nested
    return None


def _field_targeting(fields: Mapping[str, str], where: str) -> dict[str, tuple[str, ...]]:
    targeting = {}
    for name, alias in TARGETING_ALIASES.items():
        raw = fields.get(alias) or ""
        values = [part for part in re.split(r"[|,]", raw) if part.strip()]
        if values:
            targeting[name] = _normalized(name, values, f"{where} field {ITEM_FIELDS[alias]}")
    return targeting


def _normalized(name: str, values: list[str], where: str) -> tuple[str, ...]:
    out = set()
    for value in values:
        text = value.strip()
        if name == "country":
            normalized, valid = text.upper(), bool(re.fullmatch(r"[A-Za-z]{2}", text))
        elif name == "language":
            normalized = normalize_language(text)
            valid = bool(re.fullmatch(r"[a-z]{2,3}(-[A-Z]{2})?", normalized))
        else:
            normalized = text.lower()
            valid = bool(normalized) and (name != "channel" or normalized in CHANNELS)
        if not valid:
            raise CmsError(f"{where}: {name} value {value!r} is not valid (countries as "
                           f"ISO codes such as DE, channels one of {', '.join(CHANNELS)})")
        out.add(normalized)
    if not out:
        raise CmsError(f"{where}: {name} names no value")
    return tuple(sorted(out))
