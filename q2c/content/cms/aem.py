"""Adobe Experience Manager Content Fragments as a source of message blocks and legal texts.

Two wire formats, chosen by `Q2C_AEM_MODE`:

- `cloud` (AEM as a Cloud Service): the Sites OpenAPI. `GET /adobe/sites/cf/fragments?path=`
  lists the fragments under the fragment root (at most 50 a page, `cursor` for the next),
  `GET /adobe/sites/cf/fragments/{id}` reads one with its `ETag`, `.../{id}/tags` its
  tags, `.../{id}/versions` its versions and `.../{id}/versions/{versionId}` one version.
- `6.5` (AEM 6.5): the Assets HTTP API. `GET /api/assets/<folder>.json` lists a folder
  (Siren: `entities`, `srn:paging`, a `next` link), `GET /api/assets/<path>.json` reads a
  fragment: `properties.elements` and the replication properties `cq:lastReplicationAction`,
  `cq:lastReplicated`, `cq:lastReplicatedBy`. AEM 6.5 keeps the published copy on its
  publish tier; with `Q2C_AEM_PUBLISH_URL` set, q2c reads it from there.

States (the `status` of a fragment, or its last replication action on 6.5):

| AEM | q2c |
| --- | --- |
| `PUBLISHED`; `Activate` and not modified since | approved (by and at: the publication) |
| `MODIFIED`; `Activate` and modified since | working copy draft; the live version approved |
| `NEW`, `DRAFT`; never replicated | draft |
| `UNPUBLISHED`; `Deactivate`, `Delete`; deleted (404, 410) | retired |

A fragment's version (cloud) is approved when it is the one live: the newest version created
at or before the fragment's `published.at` (AEM creates a version when it publishes);
versions created after it are drafts, older ones retired (superseded at `published.at`).
On 6.5 the published copy read from the publish tier is approved while the author still
says `Activate`. The working copy's `source_version` is its ETag (cloud) or
`author@<last modified>` (6.5), a stored version's is its version id (cloud) or
`publish@<last replicated>` (6.5).

How a fragment says what it is in q2c:

- **kind** by its Content Fragment Model: model `q2c-block` is a message block (`blocks`),
  model `q2c-legal-text` a legal text (`legal`). Fragments of any other model under the
  fragment root are not q2c content and are left out of every listing.
- **content id**: field `contentId` (`year_end_closure`); without it, the fragment's name
  with `-` read as `_` (`year-end-closure`).
- **body**: field `body`, a multi-line text whose MIME type (`text/html`, `text/plain`) is
  the item's `media_type`. CMS HTML is sanitized by the registry before any template.
- **placement** (blocks): field `placement` (`top`, `bottom`), else a tag
  `q2c:placement/top`. **case** (legal): field `case` (`late_payment`), else a tag
  `q2c:case/late_payment`.
- **targeting**: tags in the `q2c` namespace, `q2c:<field>/<value>` for segment, country,
  language, brand and channel (`q2c:segment/enterprise`, `q2c:country/de`,
  `q2c:channel/email`); several values of one field mean any of them.
- **effective dates**: optional date fields `effectiveFrom`, `effectiveTo`, kept in the
  item's metadata as `effective_from`, `effective_to`.
- **locale**: the language copy folder right under the fragment root
  (`/content/dam/q2c/de-at/blocks/year-end-closure` is `de-AT`); a fragment outside a
  language folder names it in a field `locale`. The external id is the path below the
  language folder (`blocks/year-end-closure`), the same for every language copy.

Publish events are hints. AEM as a Cloud Service sends CloudEvents through Adobe I/O
Events, signed RSA-SHA256 over the raw body (`x-adobe-digital-signature-1` and `-2`,
base64); q2c checks them against the public key PEM(s) in `Q2C_AEM_EVENT_PUBLIC_KEY`
(those Adobe serves at `static.adobeioevents.com` + `x-adobe-public-key1-path`; q2c
fetches no key itself). AEM 6.5 has no signed webhook of its own: a replication event
handler posts `{"path", "action"}` with `X-Q2C-Timestamp` and `X-Q2C-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with Q2C_AEM_WEBHOOK_SECRET>`. Either kind
is accepted up to 25 hours old (Adobe retries for 24; the sensor verifies again later).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

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
from q2c.content.registry import PLACEMENTS, TARGETING_FIELDS, normalize_language
from q2c.sources.connectors.errors import ConnectorError, ProviderError, TransientError
from q2c.sources.connectors.http import HttpClient, Reply

log = logging.getLogger(__name__)

SOURCE = "aem"
PROVIDER = "AEM"
MODES = ("cloud", "6.5")
MODEL_KINDS = {"q2c-block": "blocks", "q2c-legal-text": "legal"}
SITES_FRAGMENTS = "adobe/sites/cf/fragments"
DAM_ROOT = "/content/dam/"
MAX_PAGE = 50
# How deep the 6.5 walk goes below the fragment root before it takes the folders for a loop.
MAX_FOLDER_DEPTH = 32
TAG_NAMESPACE = "q2c:"
EVENT_PREFIX = "aem.sites.contentFragment."
SIGNATURE_HEADERS = ("x-adobe-digital-signature-1", "x-adobe-digital-signature-2")
KEY_PATH_HEADERS = ("x-adobe-public-key1-path", "x-adobe-public-key2-path")
HMAC_SIGNATURE = "x-q2c-signature"
HMAC_TIMESTAMP = "x-q2c-timestamp"
# 6.5 replication actions and Sites event types, as q2c's event actions.
ACTIONS = {"activate": "published", "deactivate": "unpublished", "delete": "deleted",
           "modify": "modified", "published": "published", "unpublished": "unpublished",
           "deleted": "deleted", "modified": "modified", "created": "created"}

_LANGUAGE_FOLDER = re.compile(r"[a-z]{2}(?:[-_][a-z]{2})?", re.IGNORECASE)
_SLUG = re.compile(r"[a-z][a-z0-9_]*")
_ECMA_DATE = "%a %b %d %Y %H:%M:%S GMT%z"
_PEM_BLOCK = re.compile(rb"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)


class AemHttpClient(HttpClient):
    """The shared HTTP client, able to hand back the bytes of a rendition.

    `get_bytes` goes through the same retries, pacing and error mapping as the JSON calls;
    JSON calls still refuse a body that is not JSON (an AEM login page, a wrong URL).
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self._raw = threading.local()

    def get_bytes(self, path: str) -> Reply:
        self._raw.on = True
        try:
            return self.request("GET", path)
        finally:
            self._raw.on = False

    def _reply(self, response: requests.Response, where: str) -> Reply:
        if getattr(self._raw, "on", False):
            return Reply(response.status_code, response.headers, response.content)
        return super()._reply(response, where)


@dataclass(frozen=True)
class AemConfig:
    """How q2c reads one AEM author; see the module docstring for the modes.

    Attributes:
        mode: `cloud` (Sites OpenAPI) or `6.5` (Assets HTTP API).
        fragment_root: The DAM folder holding q2c's fragments, language copies below it.
        models: Content Fragment Model name to q2c kind.
        event_public_keys: PEM texts of the RSA keys Adobe I/O Events signs with.
        event_client_id: The `recipient_client_id` an event must name (None: not checked).
        webhook_secret: Shared secret of the 6.5 webhook.
        page_size: Fragments per listing request and per change page (1 to 50).
        max_event_age: How old a signed event may be: Adobe retries a delivery for 24
            hours, and the source's sensor verifies an event again when it takes it from
            the inbox. Events are hints (the item is fetched again), so a replay within the
            window costs a fetch and changes nothing.
        clock_skew: How far in the future an event's time may be.
        publish_slack: How long after a version's creation a publication still counts as
            publishing that version.
    """

    mode: str = "cloud"
    fragment_root: str = "/content/dam/q2c"
    models: Mapping[str, str] = field(default_factory=lambda: dict(MODEL_KINDS))
    event_public_keys: tuple[str, ...] = ()
    event_client_id: str | None = None
    webhook_secret: str | None = None
    page_size: int = MAX_PAGE
    max_event_age: dt.timedelta = dt.timedelta(hours=25)
    clock_skew: dt.timedelta = dt.timedelta(minutes=5)
    publish_slack: dt.timedelta = dt.timedelta(seconds=10)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CmsError(f"AEM mode {self.mode!r} is not one of {', '.join(MODES)}; set "
                           "Q2C_AEM_MODE to cloud (AEM as a Cloud Service) or 6.5")
        root = "/" + self.fragment_root.strip().strip("/")
        if not (root + "/").startswith(DAM_ROOT) or root + "/" == DAM_ROOT or ".." in root:
            raise CmsError(f"AEM fragment root {self.fragment_root!r} must be a folder below "
                           f"{DAM_ROOT} (Q2C_AEM_FRAGMENT_ROOT, e.g. /content/dam/q2c)")
        object.__setattr__(self, "fragment_root", root)
        if not 1 <= self.page_size <= MAX_PAGE:
            raise CmsError(f"AEM page size {self.page_size} must be between 1 and {MAX_PAGE}")
        unknown = sorted(set(self.models.values()) - {"blocks", "legal"})
        if unknown:
            raise CmsError(f"AEM models map to {unknown}; fragments are blocks or legal")


@dataclass(frozen=True)
class _Fragment:
    """One fragment (or one stored version of it) in either wire format, read."""

    path: str
    fragment_id: str | None
    model: str
    title: str
    fields: Mapping[str, tuple[str, ...]]
    mime_types: Mapping[str, str]
    tags: tuple[str, ...]
    state: str
    source_status: str
    modified_at: dt.datetime
    published_at: dt.datetime | None = None
    published_by: str | None = None
    retired_at: dt.datetime | None = None
    stamped: bool = True

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def stamp(self) -> dt.datetime:
        """When this fragment last changed, its state included: the listing's order."""
        times = [t for t in (self.modified_at, self.published_at, self.retired_at) if t]
        return max(times)


@dataclass(frozen=True)
class _Version:
    """A stored version of a cloud fragment, as the versions listing names it."""

    version_id: str
    title: str
    created_at: dt.datetime


class AemConnector:
    """Content Fragments of one AEM author as q2c content; see the module docstring.

    Args:
        client: The author's API (an `AemHttpClient` from `aem_client`).
        config: Mode, fragment root, event keys.
        publish_client: The 6.5 publish tier, to read the published copy of a fragment
            modified since (None: not read).
        clock: The time now (UTC), for event ages and retirement times.
    """

    source = SOURCE

    def __init__(self, client: HttpClient, config: AemConfig | None = None,
                 publish_client: HttpClient | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.client = client
        self.config = config or AemConfig()
        self.publish_client = publish_client
        self.now = clock or (lambda: dt.datetime.now(dt.UTC))
        self._keys = _load_public_keys(self.config.event_public_keys)
        self._located: dict[tuple[str, str], tuple[str, str | None]] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 **client_options: Any) -> AemConnector:
        """Q2C_AEM_URL, Q2C_AEM_TOKEN or Q2C_AEM_USER/Q2C_AEM_PASSWORD, Q2C_AEM_MODE,
        Q2C_AEM_FRAGMENT_ROOT, Q2C_AEM_EVENT_PUBLIC_KEY (PEM text or a PEM file),
        Q2C_AEM_EVENT_CLIENT_ID, Q2C_AEM_WEBHOOK_SECRET, Q2C_AEM_PUBLISH_URL (6.5)."""
        env = _environment(env)
        url = _required(env, "Q2C_AEM_URL", "the AEM author URL, https://author-p1-e2."
                        "adobeaemcloud.com or https://aem.example.com")
        keys = env.get("Q2C_AEM_EVENT_PUBLIC_KEY", "").strip()
        config = AemConfig(
            mode=env.get("Q2C_AEM_MODE", "").strip() or "cloud",
            fragment_root=env.get("Q2C_AEM_FRAGMENT_ROOT", "").strip() or "/content/dam/q2c",
            event_public_keys=(_pem_text(keys),) if keys else (),
            event_client_id=env.get("Q2C_AEM_EVENT_CLIENT_ID", "").strip() or None,
            webhook_secret=env.get("Q2C_AEM_WEBHOOK_SECRET", "").strip() or None,
        )
        publish_url = env.get("Q2C_AEM_PUBLISH_URL", "").strip()
        publish = (aem_client(publish_url, env, **client_options)
                   if publish_url and config.mode == "6.5" else None)
        return cls(aem_client(url, env, **client_options), config, publish)

    # -- the interface ------------------------------------------------------------------

    def changes_since(self, cursor: str | None) -> Iterator[ChangePage]:
        """Fragments under the root whose content or state changed after `cursor`.

        The APIs filter by path only, so the whole root is listed and the changes kept,
        oldest first; the cursor is the last change's time, external id and locale.
        Unpublishing changes neither the modified nor the published time, so an unpublished
        fragment is named on every listing whatever its time (q2c retires it once; later
        listings change nothing). Deleted fragments are not listed: their events and a 404
        on fetch retire them.
        """
        after = _decode_cursor(cursor)
        listed = self._list_fragments()
        changed = sorted(
            ((key, fragment) for key, fragment in listed
             if after is None or key > after or fragment.state == "UNPUBLISHED"),
            key=lambda pair: pair[0],
        )
        if not changed:
            yield ChangePage((), cursor, False)
            return
        size = self.config.page_size
        for start in range(0, len(changed), size):
            chunk = changed[start:start + size]
            refs = self._guarded(
                f"the changes under {self.config.fragment_root}",
                lambda chunk=chunk: [ref for (_, external_id, locale), fragment in chunk
                                     for ref in self._refs(fragment, external_id, locale)],
            )
            # A re-listed unpublished fragment may be older than the cursor: never go back.
            last = chunk[-1][0] if after is None else max(after, chunk[-1][0])
            yield ChangePage(tuple(refs), _encode_cursor(last), start + size < len(changed))

    def fetch(self, external_id: str, locale: str, version: str | None = None) -> CmsItem:
        locale = normalize_language(locale)
        return self._guarded(f"fragment {external_id} ({locale})",
                             lambda: self._fetch(external_id, locale, version))

    def versions(self, external_id: str, locale: str) -> list[ItemRef]:
        locale = normalize_language(locale)
        return self._guarded(f"versions of fragment {external_id} ({locale})",
                             lambda: self._versions(external_id, locale))

    def verify_event(self, headers: Mapping[str, str], body: bytes) -> PublishEvent:
        lowered = {str(name).lower(): str(value) for name, value in headers.items()}
        if any(lowered.get(name) for name in SIGNATURE_HEADERS):
            return self._adobe_event(lowered, body)
        if lowered.get(HMAC_SIGNATURE):
            return self._webhook_event(lowered, body)
        raise EventRejected(
            "AEM event: no x-adobe-digital-signature-1/-2 (AEM as a Cloud Service via Adobe "
            f"I/O Events) and no {HMAC_SIGNATURE} (the 6.5 webhook) header; unsigned events "
            "are not read"
        )

    # -- fetching -------------------------------------------------------------------------

    def _fetch(self, external_id: str, locale: str, version: str | None) -> CmsItem:
        if self.config.mode == "cloud":
            return self._cloud_fetch(external_id, locale, version)
        return self._assets_fetch(external_id, locale, version)

    def _versions(self, external_id: str, locale: str) -> list[ItemRef]:
        if self.config.mode == "cloud":
            fragment, etag = self._cloud_current(external_id, locale)
            return self._cloud_refs(fragment, external_id, locale, etag, every_version=True)
        fragment = self._assets_read(self._assets_locate(external_id, locale))
        return self._assets_refs(fragment, external_id, locale)

    def _refs(self, fragment: _Fragment, external_id: str, locale: str) -> list[ItemRef]:
        """A listed fragment's working copy, and for one modified since it was published,
        the version that is live; a fragment gone since it was listed is `deleted`."""
        if self.config.mode == "6.5":
            return self._assets_refs(fragment, external_id, locale)
        try:
            current, etag = self._cloud_get(str(fragment.fragment_id), with_tags=False)
        except ProviderError as exc:
            if exc.status not in (404, 410):
                raise
            return [ItemRef(external_id, locale, "", fragment.stamp, deleted=True)]
        return self._cloud_refs(current, external_id, locale, etag, every_version=False)

    # -- cloud: the Sites OpenAPI ---------------------------------------------------------

    def _cloud_fetch(self, external_id: str, locale: str, version: str | None) -> CmsItem:
        fragment, etag = self._cloud_current(external_id, locale)
        if version is None or version == etag:
            status, by, at, retired = self._cloud_state(fragment)
            return self._item(fragment, external_id, locale, etag, fragment.source_status,
                              status, by, at, retired)
        versions = self._cloud_versions(fragment)
        chosen = next((v for v in versions if v.version_id == version), None)
        if chosen is None:
            raise CmsNotFound(
                f"AEM fragment {fragment.path} has no version {version!r} (its working copy "
                f"is now {etag}); it changed since, list its versions again"
            )
        reply = self._json(self.client,
                           _sites_path(fragment.fragment_id, "versions", version))
        stored = self._from_sites(reply.data, fragment.tags)
        stored = replace(stored, path=fragment.path, fragment_id=fragment.fragment_id,
                         model=stored.model or fragment.model, modified_at=chosen.created_at)
        status, by, at, retired = self._cloud_version_state(fragment, chosen, versions)
        return self._item(stored, external_id, locale, version,
                          f"{fragment.source_status} (version {chosen.title})", status, by,
                          at, retired)

    def _cloud_current(self, external_id: str, locale: str) -> tuple[_Fragment, str]:
        """The fragment's working copy and its ETag, found by id or by path."""
        known = self._located.get((external_id, locale))
        if known and known[1]:
            try:
                return self._cloud_get(known[1])
            except ProviderError as exc:
                if exc.status != 404:  # 410: gone for good, not moved
                    raise
                self._located.pop((external_id, locale), None)
        for path in self._candidate_paths(external_id, locale):
            try:
                reply = self._json(self.client, SITES_FRAGMENTS, {"path": path, "limit": 1})
            except ProviderError as exc:
                if exc.status != 404:
                    raise
                continue
            items = [item for item in _items(reply.data) if item.get("path") == path]
            if items:
                fragment, etag = self._cloud_get(str(items[0]["id"]))
                self._check_locale(fragment, external_id, locale)
                return fragment, etag
        raise CmsNotFound(f"AEM has no fragment {external_id} in {locale} under "
                          f"{self.config.fragment_root} (looked for "
                          f"{', '.join(self._candidate_paths(external_id, locale))})")

    def _cloud_get(self, fragment_id: str, with_tags: bool = True) -> tuple[_Fragment, str]:
        """A fragment by id with its ETag, and its tags unless only the ETag is wanted."""
        reply = self._json(self.client, _sites_path(fragment_id))
        data = reply.data
        tags = data.get("tags") if isinstance(data.get("tags"), list) else None
        if tags is None and not with_tags:
            tags = []
        elif tags is None:
            tags = _items(self._json(self.client, _sites_path(fragment_id, "tags")).data)
        fragment = self._from_sites(data, tuple(_tag_id(tag) for tag in tags))
        etag = (reply.headers.get("ETag") or str(data.get("etag") or "")).strip()
        etag = etag.removeprefix("W/").strip('"')
        if not etag:
            raise CmsError(f"AEM answered fragment {fragment.path} without an ETag; q2c "
                           "needs it as the working copy's version")
        return fragment, etag

    def _from_sites(self, data: Mapping[str, Any], tags: Sequence[str]) -> _Fragment:
        fields: dict[str, tuple[str, ...]] = {}
        mime_types: dict[str, str] = {}
        for entry in data.get("fields") or []:
            name = str(entry.get("name") or "")
            fields[name] = tuple(str(value) for value in entry.get("values") or ()
                                 if value is not None)
            if entry.get("mimeType"):
                mime_types[name] = str(entry["mimeType"])
        state = str(data.get("status") or "").upper()
        published = data.get("published") or {}
        path = str(data.get("path") or "")
        return _Fragment(
            path=path,
            fragment_id=str(data.get("id") or "") or None,
            model=_model_path(data.get("model")),
            title=str(data.get("title") or ""),
            fields=fields, mime_types=mime_types, tags=tuple(tags), state=state,
            source_status=state or "UNKNOWN",
            modified_at=_at(data.get("modified")) or _at(data.get("created")) or self.now(),
            published_at=parse_time(published.get("at")),
            published_by=_text(published.get("by")),
        )

    def _cloud_state(self, fragment: _Fragment):
        """(status, approved_by, approved_at, retired_at) of the working copy."""
        if fragment.state == "PUBLISHED":
            return "approved", fragment.published_by, fragment.published_at, None
        if fragment.state == "UNPUBLISHED":
            return "retired", None, None, self._unpublished_at(fragment)
        if fragment.state not in ("NEW", "DRAFT", "MODIFIED"):
            log.warning("AEM fragment %s has status %r, which q2c reads as a draft",
                        fragment.path, fragment.state)
        return "draft", None, None, None

    def _cloud_version_state(self, fragment: _Fragment, version: _Version,
                             versions: Sequence[_Version]):
        """(status, approved_by, approved_at, retired_at) of a stored version."""
        if fragment.state == "UNPUBLISHED":
            return "retired", None, None, self._unpublished_at(fragment)
        live = self._live_version(fragment, versions)
        if live is None:
            return "draft", None, None, None
        if version.version_id == live.version_id:
            return "approved", fragment.published_by, fragment.published_at, None
        if version.created_at > live.created_at:
            return "draft", None, None, None
        return "retired", None, None, fragment.published_at

    def _unpublished_at(self, fragment: _Fragment) -> dt.datetime:
        """The Sites API says that a fragment is unpublished, not since when: from now."""
        return fragment.retired_at or self.now()

    def _live_version(self, fragment: _Fragment,
                      versions: Sequence[_Version]) -> _Version | None:
        """The version the publish tier serves: the newest created by its publication."""
        if fragment.state not in ("PUBLISHED", "MODIFIED") or fragment.published_at is None:
            return None
        latest = fragment.published_at + self.config.publish_slack
        created = [version for version in versions if version.created_at <= latest]
        return created[-1] if created else None

    def _cloud_versions(self, fragment: _Fragment) -> list[_Version]:
        found: list[_Version] = []
        for item in self._sites_pages(_sites_path(fragment.fragment_id, "versions"), {}):
            created = _at(item.get("created"))
            if created is None or not item.get("id"):
                raise CmsError(f"AEM listed a version of {fragment.path} without an id or "
                               "creation time")
            found.append(_Version(str(item["id"]), str(item.get("title") or ""), created))
        return sorted(found, key=lambda version: (version.created_at, version.version_id))

    def _cloud_refs(self, fragment: _Fragment, external_id: str, locale: str, etag: str,
                    every_version: bool) -> list[ItemRef]:
        refs = []
        if every_version or fragment.state == "MODIFIED":
            versions = self._cloud_versions(fragment)
            live = self._live_version(fragment, versions)
            chosen = versions if every_version else [live] if live else []
            refs = [ItemRef(external_id, locale, v.version_id, v.created_at) for v in chosen]
        refs.append(ItemRef(external_id, locale, etag, fragment.stamp))
        return refs

    def _sites_pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Mapping]:
        """Every item of a Sites API listing, following `cursor` page by page."""
        cursor = None
        seen: set[str] = set()
        while True:
            query = {**params, "limit": self.config.page_size}
            if cursor:
                query["cursor"] = cursor
            data = self._json(self.client, path, query).data
            if not isinstance(data, Mapping):
                raise CmsError(f"{PROVIDER}: the Sites API listing of {path} is not a JSON "
                               "object")
            yield from _items(data)
            cursor = data.get("cursor")
            if not cursor:
                return
            if cursor in seen:
                raise CmsError(
                    f"{PROVIDER}: the Sites API listing of {path} gave the page cursor "
                    f"{str(cursor)[:80]!r} again; the listing cannot go on")
            seen.add(cursor)

    # -- 6.5: the Assets HTTP API ---------------------------------------------------------

    def _assets_fetch(self, external_id: str, locale: str, version: str | None) -> CmsItem:
        path = self._assets_locate(external_id, locale)
        fragment = self._assets_read(path)
        current = _author_version(fragment)
        if version is None or version == current:
            status, by, at, retired = self._assets_state(fragment)
            return self._item(fragment, external_id, locale, current, fragment.source_status,
                              status, by, at, retired)
        if version.startswith("publish@"):
            return self._published_copy(fragment, external_id, locale, version)
        raise CmsNotFound(f"AEM fragment {path} is no longer at version {version!r} (now "
                          f"{current}); it changed since, list its versions again")

    def _published_copy(self, fragment: _Fragment, external_id: str, locale: str,
                        version: str) -> CmsItem:
        if self.publish_client is None:
            raise CmsNotFound(f"AEM 6.5 keeps the published copy of {fragment.path} on the "
                              "publish tier; set Q2C_AEM_PUBLISH_URL to read it")
        if fragment.state not in ("MODIFIED", "PUBLISHED") or \
                _publish_version(fragment) != version:
            raise CmsNotFound(f"AEM fragment {fragment.path} is no longer published as "
                              f"{version!r} (now {fragment.source_status}); list its versions "
                              "again")
        published = self._assets_read(fragment.path, self.publish_client)
        return self._item(replace(published, modified_at=fragment.published_at), external_id,
                          locale, version, "Activate (publish tier)", "approved",
                          fragment.published_by, fragment.published_at, None)

    def _assets_refs(self, fragment: _Fragment, external_id: str,
                     locale: str) -> list[ItemRef]:
        refs = []
        if fragment.state == "MODIFIED" and self.publish_client is not None:
            refs.append(ItemRef(external_id, locale, _publish_version(fragment),
                                fragment.published_at))
        refs.append(ItemRef(external_id, locale, _author_version(fragment), fragment.stamp))
        return refs

    def _assets_locate(self, external_id: str, locale: str) -> str:
        known = self._located.get((external_id, locale))
        candidates = list(dict.fromkeys(([known[0]] if known else [])
                                        + self._candidate_paths(external_id, locale)))
        for path in candidates:
            try:
                data = self._json(self.client, assets_api_path(path)).data
            except ProviderError as exc:
                if exc.status == 404:
                    continue
                raise
            if (data.get("properties") or {}).get("contentFragment"):
                fragment = self._assets_fragment(path, data)
                self._check_locale(fragment, external_id, locale)
                return path
        raise CmsNotFound(f"AEM has no fragment {external_id} in {locale} under "
                          f"{self.config.fragment_root} (looked for {', '.join(candidates)})")

    def _assets_read(self, path: str, client: HttpClient | None = None) -> _Fragment:
        data = self._json(client or self.client, assets_api_path(path)).data
        if not (data.get("properties") or {}).get("contentFragment"):
            raise CmsError(f"AEM asset {path} is not a content fragment")
        return self._assets_fragment(path, data)

    def _assets_fragment(self, path: str, data: Mapping[str, Any]) -> _Fragment:
        props = data.get("properties") or {}
        meta = props.get("metadata") or {}
        fields: dict[str, tuple[str, ...]] = {}
        mime_types: dict[str, str] = {}
        for name, element in (props.get("elements") or {}).items():
            value = element.get("value")
            values = value if isinstance(value, list) else [] if value is None else [value]
            fields[str(name)] = tuple(str(v) for v in values)
            kind = str(element.get(":type") or element.get("contentType") or "")
            if kind:  # a MIME type for text elements; `string` is plain text
                mime_types[str(name)] = kind if "/" in kind else "text/plain"
        modified = parse_time(props.get("modified") or props.get("jcr:lastModified")
                              or meta.get("jcr:lastModified") or meta.get("dc:modified"))
        action = str(_either(props, meta, "cq:lastReplicationAction") or "").strip()
        replicated = parse_time(_either(props, meta, "cq:lastReplicated"))
        by = _text(_either(props, meta, "cq:lastReplicatedBy"))
        if not action and props.get("published"):  # only the publication is named
            action, replicated = "Activate", parse_time(props.get("published"))
            by = _text(props.get("publishedBy"))
        tags = props.get("cq:tags") or meta.get("cq:tags") or ()
        base = dict(path=path, fragment_id=None, model=_model_path(props.get("cq:model")),
                    title=str(props.get("title") or meta.get("dc:title") or ""),
                    fields=fields, mime_types=mime_types,
                    tags=tuple(str(tag) for tag in tags),
                    modified_at=modified or replicated or self.now(),
                    stamped=modified is not None)
        if action == "Activate" and replicated is not None and modified and modified > replicated:
            return _Fragment(**base, state="MODIFIED", source_status="Activate, modified since",
                             published_at=replicated, published_by=by)
        if action == "Activate":
            return _Fragment(**base, state="PUBLISHED", source_status="Activate",
                             published_at=replicated or base["modified_at"], published_by=by)
        if action in ("Deactivate", "Delete"):
            return _Fragment(**base, state="UNPUBLISHED", source_status=action,
                             retired_at=replicated or self.now())
        return _Fragment(**base, state="DRAFT", source_status=action or "not replicated")

    @staticmethod
    def _assets_state(fragment: _Fragment):
        if fragment.state == "PUBLISHED":
            return "approved", fragment.published_by, fragment.published_at, None
        if fragment.state == "UNPUBLISHED":
            return "retired", None, None, fragment.retired_at
        return "draft", None, None, None

    def _assets_walk(self, folder: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Every content fragment below a DAM folder, with its listing entity.

        Walked with a stack, not recursion, at most `MAX_FOLDER_DEPTH` folders deep, each
        folder once: a server that lists a folder inside itself, or the same page again
        and again, stops with a CmsError instead of looping."""
        pending = [(folder, 0)]
        visited: set[str] = set()
        while pending:
            current, depth = pending.pop()
            if current in visited:
                continue
            visited.add(current)
            if depth > MAX_FOLDER_DEPTH:
                raise CmsError(
                    f"{PROVIDER}: folder {current} is more than {MAX_FOLDER_DEPTH} folders "
                    f"below {folder}; the Assets API seems to list a folder inside itself")
            children: list[str] = []
            for path, entity in self._assets_folder(current):
                if entity is None:
                    children.append(path)
                else:
                    yield path, entity
            pending.extend((child, depth + 1) for child in reversed(children))

    def _assets_folder(self, folder: str) -> Iterator[tuple[str, Mapping[str, Any] | None]]:
        """One folder's entries page by page: (path, entity) for a fragment, (path, None)
        for a subfolder. A page that names only entries already listed ends the walk."""
        offset = 0
        listed: set[str] = set()
        while True:
            query = {"offset": offset, "limit": self.config.page_size}
            data = self._json(self.client, assets_api_path(folder), query).data
            if not isinstance(data, Mapping):
                raise CmsError(f"{PROVIDER}: the Assets API listing of {folder} is not a "
                               "JSON object")
            entities = [e for e in data.get("entities") or [] if isinstance(e, Mapping)]
            names = [f"{folder}/{(e.get('properties') or {}).get('name')}" for e in entities]
            if entities and listed.issuperset(names):
                raise CmsError(
                    f"{PROVIDER}: the Assets API listing of {folder} repeats the same "
                    f"entries at offset {offset}; the listing cannot go on")
            listed.update(names)
            for child, entity in zip(names, entities, strict=True):
                if "assets/folder" in (entity.get("class") or []):
                    yield child, None
                elif (entity.get("properties") or {}).get("contentFragment"):
                    yield child, entity
            paging = (data.get("properties") or {}).get("srn:paging") or {}
            offset += len(entities)
            has_next = any("next" in (link.get("rel") or []) for link in data.get("links") or [])
            if not entities or not (has_next or offset < int(paging.get("total") or 0)):
                return

    # -- listing, common ------------------------------------------------------------------

    def _list_fragments(self) -> list[tuple[tuple[dt.datetime, str, str], _Fragment]]:
        def listing():
            if self.config.mode == "cloud":
                params = {"path": self.config.fragment_root}
                for item in self._sites_pages(SITES_FRAGMENTS, params):
                    yield self._from_sites(item, ())
            else:
                for path, entity in self._assets_walk(self.config.fragment_root):
                    yield self._assets_fragment(path, entity)

        found = []
        for fragment in self._guarded(f"the fragments under {self.config.fragment_root}",
                                      lambda: list(listing())):
            if self._kind(fragment) is None:
                log.debug("AEM fragment %s (model %s) is not q2c content", fragment.path,
                          fragment.model or "none")
                continue
            try:
                external_id, locale = self._identity(fragment)
            except CmsError as exc:
                log.warning("%s; it is left out until it says its locale", exc)
                continue
            self._located[(external_id, locale)] = (fragment.path, fragment.fragment_id)
            found.append(((fragment.stamp, external_id, locale), fragment))
        return found

    def _candidate_paths(self, external_id: str, locale: str) -> list[str]:
        """Where the `locale` copy of `external_id` may be: the language folders AEM names
        (`de-at`, `de_at`, `de-AT`, `de_AT`), then outside a language folder."""
        if not external_id or external_id.startswith("/") or ".." in external_id.split("/"):
            raise CmsError(f"AEM external id {external_id!r} must be a path below the "
                           "language folder, such as blocks/year-end-closure")
        root = self.config.fragment_root
        language, _, region = locale.partition("-")
        forms = [locale.lower()]
        if region:
            forms = [f"{language}-{region.lower()}", f"{language}_{region.lower()}",
                     f"{language}-{region}", f"{language}_{region}"]
        return [f"{root}/{form}/{external_id}" for form in forms] + [f"{root}/{external_id}"]

    def _identity(self, fragment: _Fragment) -> tuple[str, str]:
        """(external id, locale) from the fragment's path, or its `locale` field."""
        external_id, locale = self._path_identity(fragment.path)
        locale = locale or normalize_language(_first(fragment.fields.get("locale")))
        if not locale:
            raise CmsError(f"AEM fragment {fragment.path} is in no language folder below "
                           f"{self.config.fragment_root} and has no `locale` field")
        return external_id, locale

    def _path_identity(self, path: str) -> tuple[str, str | None]:
        """(external id, the language folder's locale or None) of a path below the root."""
        root = self.config.fragment_root
        if not path.startswith(root + "/") or ".." in path.split("/"):
            raise CmsError(f"AEM path {path or '(none)'} is outside the fragment root {root}")
        relative = path[len(root) + 1:]
        first, _, rest = relative.partition("/")
        if rest and _LANGUAGE_FOLDER.fullmatch(first):
            return rest, normalize_language(first)
        return relative, None

    def _check_locale(self, fragment: _Fragment, external_id: str, locale: str) -> None:
        found = self._identity(fragment)
        if found != (external_id, locale):
            raise CmsNotFound(f"AEM fragment {fragment.path} is {found[0]} in {found[1]}, not "
                              f"{external_id} in {locale}")
        self._located[found] = (fragment.path, fragment.fragment_id)

    # -- items ----------------------------------------------------------------------------

    def _kind(self, fragment: _Fragment) -> str | None:
        return self.config.models.get(fragment.model.rstrip("/").rsplit("/", 1)[-1])

    def _item(self, fragment: _Fragment, external_id: str, locale: str, version: str,
              source_status: str, status: str, approved_by: str | None,
              approved_at: dt.datetime | None, retired_at: dt.datetime | None) -> CmsItem:
        where = f"AEM fragment {fragment.path}"
        kind = self._kind(fragment)
        if kind is None:
            raise CmsError(
                f"{where} uses the model {fragment.model or '(none)'}, which is not a q2c "
                f"model ({', '.join(sorted(self.config.models))}); move it out of "
                f"{self.config.fragment_root} or give it a q2c model"
            )
        body = fragment.fields.get("body") or ()
        if len(body) != 1 or not body[0].strip():
            raise CmsError(f"{where}: field `body` must hold one text (it holds {len(body)}); "
                           "write the block or legal text in it")
        tags = _q2c_tags(fragment.tags)
        metadata: dict[str, object] = {"path": fragment.path, "model": fragment.model,
                                       "tags": list(fragment.tags)}
        if fragment.fragment_id:
            metadata["fragment_id"] = fragment.fragment_id
        for name, key in (("effectiveFrom", "effective_from"), ("effectiveTo", "effective_to")):
            value = _first(fragment.fields.get(name))
            if value:
                metadata[key] = _effective_date(value, where, name)
        return CmsItem(
            source=SOURCE, external_id=external_id, locale=locale, source_version=version,
            source_status=source_status, status=status, kind=kind,
            content_id=_content_id(fragment, where), title=fragment.title,
            body=body[0].encode("utf-8"),
            media_type=fragment.mime_types.get("body") or "text/html",
            modified_at=fragment.modified_at, approved_by=approved_by, approved_at=approved_at,
            retired_at=retired_at, targeting=_targeting(tags),
            case=_named(fragment, tags, "case", CASES, where) if kind == "legal" else None,
            placement=(_named(fragment, tags, "placement", PLACEMENTS, where)
                       if kind == "blocks" else None),
            metadata=metadata,
        )

    # -- events ---------------------------------------------------------------------------

    def _adobe_event(self, headers: Mapping[str, str], body: bytes) -> PublishEvent:
        if not self._keys:
            path = headers.get(KEY_PATH_HEADERS[0]) or "/prod/keys/<key>.pem"
            raise EventRejected(
                "AEM event signed by Adobe I/O Events, but no key is configured: set "
                "Q2C_AEM_EVENT_PUBLIC_KEY to the public key PEM Adobe serves at "
                f"https://static.adobeioevents.com{path}"
            )
        if not any(_rsa_verifies(key, headers.get(name), body)
                   for name in SIGNATURE_HEADERS for key in self._keys):
            paths = ", ".join(headers[name] for name in KEY_PATH_HEADERS if headers.get(name))
            raise EventRejected(
                "AEM event: neither x-adobe-digital-signature-1 nor -2 verifies over the body "
                "with Q2C_AEM_EVENT_PUBLIC_KEY: the body was changed or the key is out of "
                f"date (Adobe names {paths or 'no key path'})"
            )
        event = _json_object(body)
        client_id = self.config.event_client_id
        if client_id and event.get("recipient_client_id") != client_id:
            raise EventRejected(
                f"AEM event is for client {event.get('recipient_client_id')!r}, not "
                f"{client_id!r} (Q2C_AEM_EVENT_CLIENT_ID)"
            )
        kind = str(event.get("type") or "")
        if not kind.startswith(EVENT_PREFIX) or kind[len(EVENT_PREFIX):] not in ACTIONS:
            raise EventRejected(f"AEM event type {kind!r} is not a content fragment event "
                                f"({EVENT_PREFIX}published, unpublished, modified, ...)")
        when = parse_time(event.get("time"))
        if when is None:
            raise EventRejected("AEM event has no `time`; it cannot be checked for age")
        self._check_age(when)
        data = event.get("data") or {}
        return self._event(str(data.get("path") or ""), ACTIONS[kind[len(EVENT_PREFIX):]],
                           str(event.get("event_id") or headers.get("x-adobe-event-id")
                               or event.get("id") or "") or None)

    def _webhook_event(self, headers: Mapping[str, str], body: bytes) -> PublishEvent:
        secret = self.config.webhook_secret
        if not secret:
            raise EventRejected("AEM webhook event, but Q2C_AEM_WEBHOOK_SECRET is not set")
        stamp = headers.get(HMAC_TIMESTAMP, "")
        try:
            sent = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
        except (ValueError, OverflowError) as exc:
            raise EventRejected(f"AEM webhook event: {HMAC_TIMESTAMP} {stamp!r} is not Unix "
                                "seconds") from exc
        expected = hmac.new(secret.encode(), stamp.encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        given = headers.get(HMAC_SIGNATURE, "").strip().removeprefix("sha256=")
        if not hmac.compare_digest(expected, given):
            raise EventRejected(f"AEM webhook event: {HMAC_SIGNATURE} does not match the body "
                                "and timestamp with Q2C_AEM_WEBHOOK_SECRET")
        self._check_age(sent)
        event = _json_object(body)
        action = ACTIONS.get(str(event.get("action") or "").lower())
        if action is None:
            raise EventRejected(f"AEM webhook action {event.get('action')!r} is not Activate, "
                                "Deactivate, Delete or Modify")
        return self._event(str(event.get("path") or ""), action,
                           str(event.get("id") or "") or None)

    def _check_age(self, when: dt.datetime) -> None:
        now = self.now()
        if when < now - self.config.max_event_age or when > now + self.config.clock_skew:
            raise EventRejected(
                f"AEM event of {when.isoformat()} is outside the accepted window (at most "
                f"{self.config.max_event_age} old, {self.config.clock_skew} ahead); an older "
                "one is a replay or was missed: the reconcile reads the item anyway")

    def _event(self, path: str, action: str, event_id: str | None) -> PublishEvent:
        try:
            external_id, locale = self._path_identity(path)
        except CmsError as exc:
            raise EventRejected(f"AEM event for {path or '(no path)'}: {exc}") from exc
        return PublishEvent(source=SOURCE, external_id=external_id, action=action,
                            received_at=self.now(), locale=locale, event_id=event_id)

    # -- transport ------------------------------------------------------------------------

    def _json(self, client: HttpClient, path: str,
              params: Mapping[str, Any] | None = None) -> Reply:
        reply = client.get(path, params)
        if not isinstance(reply.data, dict):
            raise CmsError(f"AEM answered {path} with no JSON object; check Q2C_AEM_URL "
                           "points at the author and Q2C_AEM_MODE matches it")
        return reply

    def _guarded(self, what: str, call: Callable[[], Any]) -> Any:
        """Run a call, turning the HTTP client's errors into the CMS errors callers handle."""
        try:
            return call()
        except TransientError as exc:
            raise CmsUnavailable(f"AEM could not be read for {what}: {exc}") from exc
        except ProviderError as exc:
            if exc.status in (404, 410):
                gone = " (HTTP 410: gone for good)" if exc.status == 410 else ""
                raise CmsNotFound(f"AEM has no {what}{gone}: {exc}") from exc
            raise CmsError(f"AEM refused the request for {what}: {exc}") from exc
        except ConnectorError as exc:
            raise CmsError(str(exc)) from exc


def aem_client(url: str, env: Mapping[str, str] | None = None,
               **client_options: Any) -> AemHttpClient:
    """An HTTP client for an AEM instance with the credentials in the environment.

    Q2C_AEM_TOKEN (a bearer token: an IMS access token on AEM as a Cloud Service) wins over
    Q2C_AEM_USER and Q2C_AEM_PASSWORD (basic authentication, AEM 6.5); Q2C_AEM_API_KEY, when
    set, goes out as `X-Api-Key` (the client id the Sites OpenAPI asks for).
    """
    env = _environment(env)
    token = env.get("Q2C_AEM_TOKEN", "").strip()
    user = env.get("Q2C_AEM_USER", "").strip()
    password = env.get("Q2C_AEM_PASSWORD", "")
    if token:
        authorization, secrets = f"Bearer {token}", (token,)
    elif user and password:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        authorization, secrets = f"Basic {basic}", (password, basic)
    else:
        raise CmsError("AEM is not configured: set Q2C_AEM_TOKEN (a bearer token) or "
                       "Q2C_AEM_USER and Q2C_AEM_PASSWORD")
    headers = {"Authorization": authorization, "Accept": "application/json, */*"}
    api_key = env.get("Q2C_AEM_API_KEY", "").strip()
    if api_key:
        headers["X-Api-Key"] = api_key
    if not url.startswith(("https://", "http://")):
        raise CmsError(f"Q2C_AEM_URL {url!r} must be an http(s) URL of the AEM author")
    return AemHttpClient(
        provider=PROVIDER, base_url=url, headers=headers,
        auth_hint=("Set Q2C_AEM_TOKEN to a valid access token, or Q2C_AEM_USER and "
                   "Q2C_AEM_PASSWORD to a user allowed to read the DAM."),
        error_text=_error_text, secrets=secrets, **cms_client_options(client_options),
    )


def _error_text(data: Any, text: str) -> str:
    """The Problem Details of the Sites API (`title`, `detail`), else the first of the body."""
    if isinstance(data, dict) and (data.get("detail") or data.get("title")):
        return "; ".join(str(data[key]) for key in ("title", "detail") if data.get(key))
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text or "")).strip()[:200] \
        or "no error text"


def _environment(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise CmsError(f"AEM is not configured: set {name} ({what})")
    return value


def _pem_text(value: str) -> str:
    """A PEM given inline, or read from the file the variable names."""
    if "-----BEGIN" in value:
        return value
    try:
        return Path(value).read_text(encoding="ascii")
    except OSError as exc:
        raise CmsError(f"Q2C_AEM_EVENT_PUBLIC_KEY is neither a PEM nor a readable PEM file "
                       f"({value}: {exc.strerror})") from exc


def _load_public_keys(pems: Sequence[str]) -> list[rsa.RSAPublicKey]:
    keys = []
    for pem in pems:
        blocks = _PEM_BLOCK.findall(pem.encode("ascii", "replace"))
        if not blocks:
            raise CmsError("Q2C_AEM_EVENT_PUBLIC_KEY holds no PEM block (-----BEGIN PUBLIC "
                           "KEY-----)")
        for block in blocks:
            try:
                key = serialization.load_pem_public_key(block)
            except ValueError as exc:
                raise CmsError(f"Q2C_AEM_EVENT_PUBLIC_KEY holds a PEM that is not a public "
                               f"key ({exc})") from exc
            if not isinstance(key, rsa.RSAPublicKey):
                raise CmsError("Q2C_AEM_EVENT_PUBLIC_KEY must be an RSA public key: Adobe I/O "
                               "Events signs RSA-SHA256")
            keys.append(key)
    return keys


def _rsa_verifies(key: rsa.RSAPublicKey, signature: str | None, body: bytes) -> bool:
    if not signature:
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), body, padding.PKCS1v15(),
                   hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventRejected(f"AEM event body is not JSON ({exc})") from exc
    if not isinstance(event, dict):
        raise EventRejected("AEM event body is not a JSON object")
    return event


def _items(data: Any) -> list[Mapping[str, Any]]:
    items = data.get("items") if isinstance(data, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _tag_id(tag: Any) -> str:
    return str(tag.get("id") or tag.get("tagId") or "") if isinstance(tag, dict) else str(tag)


def _model_path(model: Any) -> str:
    """A model's path from `{"path"}`, `{"id"}` (a path or its base64url) or a string."""
    if isinstance(model, dict):
        model = model.get("path") or model.get("id") or ""
    text = str(model or "")
    if text and not text.startswith("/"):
        try:
            decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return text
        if decoded.startswith("/"):
            return decoded
    return text


def _sites_path(fragment_id: str | None, *parts: str) -> str:
    """`adobe/sites/cf/fragments/<id>/<part>...`, every part quoted."""
    return "/".join([SITES_FRAGMENTS, *(quote(str(part), safe="") for part in
                                        (fragment_id or "", *parts))])


def assets_api_path(path: str) -> str:
    """`/content/dam/q2c/en/x` as its Assets HTTP API address, `api/assets/q2c/en/x.json`."""
    return "api/assets/" + quote(path[len(DAM_ROOT):], safe="/") + ".json"


def _author_version(fragment: _Fragment) -> str:
    """`author@<last modified>`, or where AEM gives no time, `author@sha256:<fields>`."""
    if fragment.stamped:
        return f"author@{fragment.modified_at.astimezone(dt.UTC).isoformat()}"
    fields = json.dumps({"title": fragment.title, "fields": fragment.fields}, sort_keys=True)
    return "author@sha256:" + hashlib.sha256(fields.encode()).hexdigest()[:16]


def _publish_version(fragment: _Fragment) -> str:
    when = fragment.published_at or fragment.modified_at
    return f"publish@{when.astimezone(dt.UTC).isoformat()}"


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 time, the JCR's `Wed Aug 30 2017 13:35:46 GMT+0200` or the Assets HTTP
    API's milliseconds since 1970, as UTC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = dt.datetime.strptime(re.sub(r"\s*\(.*\)$", "", text), _ECMA_DATE)
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _at(value: Any) -> dt.datetime | None:
    """The time of a Sites API stamp: `{"at": ..., "by": ...}` or the time alone."""
    return parse_time(value.get("at") if isinstance(value, dict) else value)


def _effective_date(value: str, where: str, name: str) -> str:
    when = parse_time(value)
    if when is None:
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError as exc:
            raise CmsError(f"{where}: field `{name}` {value!r} is not a date") from exc
    return when.date().isoformat()


def _either(props: Mapping[str, Any], meta: Mapping[str, Any], name: str) -> Any:
    """A property of the asset, or of its metadata node where the API puts it there."""
    return props.get(name) if props.get(name) is not None else meta.get(name)


def _text(value: Any) -> str | None:
    return (str(value).strip() or None) if value is not None else None


def _first(values: Sequence[str] | None) -> str:
    return values[0].strip() if values else ""


def _q2c_tags(tags: Sequence[str]) -> dict[str, list[str]]:
    """`q2c:segment/enterprise` tags as {"segment": ["enterprise"]}; other tags ignored."""
    found: dict[str, list[str]] = {}
    for tag in tags:
        if tag.startswith(TAG_NAMESPACE) and "/" in tag:
            name, _, value = tag[len(TAG_NAMESPACE):].partition("/")
            if value:
                found.setdefault(name, []).append(value)
    return found


def _targeting(tags: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """q2c targeting, normalized as the registry does (countries upper case, languages as
    tags, the rest lower case)."""
    targeting = {}
    for name in TARGETING_FIELDS:
        values = tags.get(name) or []
        if name == "country":
            values = [value.upper() for value in values]
        elif name == "language":
            values = [normalize_language(value) for value in values]
        else:
            values = [value.lower() for value in values]
        if values:
            targeting[name] = tuple(sorted(set(values)))
    return targeting


def _content_id(fragment: _Fragment, where: str) -> str:
    value = _first(fragment.fields.get("contentId")) or fragment.name.replace("-", "_")
    if not _SLUG.fullmatch(value):
        raise CmsError(f"{where}: content id {value!r} (field `contentId`, else the fragment's "
                       "name) must be a name such as year_end_closure")
    return value


def _named(fragment: _Fragment, tags: Mapping[str, list[str]], name: str,
           allowed: Sequence[str], where: str) -> str:
    """`case` or `placement` from the field of that name, else the `q2c:<name>/` tag."""
    value = _first(fragment.fields.get(name)) or _first(tags.get(name))
    if value not in allowed:
        raise CmsError(f"{where}: `{name}` {value or '(none)'!r} must be one of "
                       f"{', '.join(allowed)} (field `{name}` or tag q2c:{name}/<value>)")
    return value


def _encode_cursor(key: tuple[dt.datetime, str, str]) -> str:
    return f"{key[0].isoformat()}|{key[1]}|{key[2]}"


def _decode_cursor(cursor: str | None) -> tuple[dt.datetime, str, str] | None:
    if not cursor:
        return None
    parts = cursor.split("|")
    when = parse_time(parts[0]) if len(parts) == 3 else None
    if when is None:
        raise CmsError(f"{cursor!r} is not an AEM change cursor (time|external id|locale); "
                       "reset the source's cursor to read everything again")
    return when, parts[1], parts[2]
