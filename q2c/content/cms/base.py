"""What every CMS or DAM connector gives the content registry, whatever system it talks to.

A connector lists what changed since a cursor, fetches one item at a version, lists an
item's versions and verifies a publish event. It maps the system's own states onto q2c's
three (draft, approved, retired) and says which q2c content slot an item fills; it never
decides what reaches a customer. That is the registry's job: it takes only approved items,
pins each by the SHA-256 of its body, and sanitizes CMS HTML before any template sees it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from q2c.sources.connectors.http import RetryPolicy

STATUSES = ("draft", "approved", "retired")
# How long a CMS may hold a run: at most 4 attempts, a Retry-After of at most 30 s honoured,
# 10 s to connect and 30 s per read. A CMS that keeps answering 429 or stays silent is
# unavailable within minutes, and the last approved content stays in force.
CMS_RETRY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=30.0, max_retry_after=30.0)
CMS_TIMEOUT = (10.0, 30.0)


def cms_client_options(options: Mapping[str, object]) -> dict[str, object]:
    """A connector's HttpClient options with the CMS retry policy and timeouts as defaults."""
    return {"retry": CMS_RETRY, "timeout": CMS_TIMEOUT, **options}
# What a CMS item can be in q2c: a message block, a legal text, a brand asset (an image
# for a theme) or a supporting document (a contract, a statement of work) for attachments.
KINDS = ("blocks", "legal", "asset", "document")


class CmsError(RuntimeError):
    """A CMS answered in a way the connector cannot use; the message says what to fix."""


class CmsUnavailable(CmsError):
    """The CMS is down, too slow, or still answering 429 after the retries: the content
    already in force stays in force and the run says so."""


class CmsNotFound(CmsError):
    """The item or version does not exist (404) or is gone for good (410)."""


class EventRejected(CmsError):
    """A publish event whose signature, timestamp or shape does not check out."""


@dataclass(frozen=True)
class ItemRef:
    """One item in one locale as a change listing or a version listing names it."""

    external_id: str
    locale: str
    source_version: str
    modified_at: dt.datetime
    deleted: bool = False


@dataclass(frozen=True)
class ChangePage:
    """One page of what changed since a cursor; `cursor` resumes after this page."""

    items: tuple[ItemRef, ...]
    cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class CmsItem:
    """One version of one item in one locale, as fetched from its system.

    Attributes:
        source: The system: `wordpress`, `sitecore` or `aem`.
        external_id: The item's id in that system (post id, item GUID, fragment path).
        locale: Language tag of this language version (`en`, `de-AT`).
        source_version: The system's own version (revision id, version number, etag).
        source_status: The system's own state, as it says it (`publish`, `draft`,
            `trash`, a workflow state name, `PUBLISHED`...).
        status: That state mapped onto q2c's: draft, approved or retired.
        kind: blocks, legal, asset or document.
        content_id: The q2c item the CMS item is a version of (a block id such as
            `year_end_closure`, a legal text id such as `late_payment_de`).
        title: The item's title in the system.
        body: HTML for blocks and legal texts (sanitized later, never trusted), the bytes of
            an asset or document.
        media_type: `text/html`, `image/png`, `application/pdf`...
        modified_at: When the system last changed this version (UTC).
        approved_by: Who approved or published it, where the system says.
        approved_at: When, where the system says.
        retired_at: From when it must no longer be chosen (trash, unpublish, expiry).
        targeting: q2c targeting (segment, country, language, brand, channel) the system's
            categories, variants or metadata map to; empty means anyone.
        case: For legal texts, the legal case (`late_payment`, `reverse_charge_eu`...).
        placement: For message blocks, `top` or `bottom`.
        metadata: Anything else worth keeping from the system (tags, asset metadata).
        withdraws_approved: The system keeps no published copy apart from this one
            (WordPress keeps one state per post): when this item is not approved, nothing
            of it is live, so every approved version of it is retired from when q2c sees
            it. False where a newer draft sits beside the live version (Sitecore, AEM).
    """

    source: str
    external_id: str
    locale: str
    source_version: str
    source_status: str
    status: str
    kind: str
    content_id: str
    title: str
    body: bytes
    media_type: str
    modified_at: dt.datetime
    approved_by: str | None = None
    approved_at: dt.datetime | None = None
    retired_at: dt.datetime | None = None
    targeting: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    case: str | None = None
    placement: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)
    withdraws_approved: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise CmsError(
                f"{self.source} item {self.external_id} ({self.locale}): status "
                f"{self.status!r} is not one of {', '.join(STATUSES)}; the connector must map "
                f"the system's state {self.source_status!r}"
            )
        if self.kind not in KINDS:
            raise CmsError(
                f"{self.source} item {self.external_id}: kind {self.kind!r} is not one of "
                f"{', '.join(KINDS)}"
            )

    @property
    def sha256(self) -> str:
        """The pin a rendered document records: the hash of the body as fetched."""
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True)
class PublishEvent:
    """A system's notice that an item changed. A hint only: the registry re-fetches the
    item through the API and compares hashes before anything changes.

    `body_sha256` is the SHA-256 of the item body the event carries, where the system
    sends one; it is compared with the API's, never stored as content.
    """

    source: str
    external_id: str
    action: str
    received_at: dt.datetime
    locale: str | None = None
    source_version: str | None = None
    event_id: str | None = None
    body_sha256: str | None = None


class CmsConnector(Protocol):
    """The interface every CMS and DAM connector implements."""

    source: str

    def changes_since(self, cursor: str | None) -> Iterator[ChangePage]:
        """Pages of items changed since `cursor` (None: everything), oldest first.

        Raises:
            CmsUnavailable: The system is down, slow or rate-limiting past the retries.
        """
        ...

    def fetch(self, external_id: str, locale: str, version: str | None = None) -> CmsItem:
        """One item in one locale at `version` (None: the current one).

        Raises:
            CmsNotFound: On 404 or 410.
            CmsUnavailable: As above.
        """
        ...

    def versions(self, external_id: str, locale: str) -> list[ItemRef]:
        """Every version the system keeps of the item, oldest first."""
        ...

    def verify_event(self, headers: Mapping[str, str], body: bytes) -> PublishEvent:
        """Check a publish event's signature (where the system signs) and read it.

        Raises:
            EventRejected: Naming what did not check out.
        """
        ...
