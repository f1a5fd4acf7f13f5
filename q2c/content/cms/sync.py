"""Bring the CMS store up to date with a source: follow its changes, then reconcile.

`sync()` walks the pages of `changes_since(cursor)`, fetches each changed item's current
version through the API and records it (`CmsStore.record` compares hashes: an unchanged
body records nothing). The cursor is saved after each page, so a run that stops resumes
where it stopped. `reconcile()` fetches every item the store knows, one by one, and so
catches what a missed event or a lost page of changes left out: a changed body, a trashed
item, an item that is gone (404 or 410), which is retired from that moment.

A source that is down, too slow or still answering 429 after the retries
(`CmsUnavailable`) never raises out of either: what was recorded stays, the last approved
content stays in force, and the result says `unavailable` with the error and the counts
so far. The same result is logged and kept in `cms_syncs`. A listing whose answer cannot be
read (a CmsError, or an answer of the wrong shape) ends the run the same way, as
`unreadable answer: ...`; an item that cannot be read is a problem of that item only.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field, replace

from q2c.content.cms.base import (
    CmsConnector,
    CmsError,
    CmsNotFound,
    CmsUnavailable,
    ItemRef,
)
from q2c.content.cms.registry_merge import becomes_entry, build_entries
from q2c.content.cms.store import CmsStore, Recorded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    """What one sync or reconcile of one source did.

    Attributes:
        source: The source.
        mode: `sync` (changes since the cursor) or `reconcile` (every known item).
        status: `ok`, or `unavailable` when the source could not be reached; then the
            last approved content stays in force.
        error: Why the source was unavailable.
        checked: Items fetched.
        new_versions: Versions (or bodies) recorded for the first time.
        approved: Versions that became approved.
        retired: Approved versions retired (trashed, unpublished, deleted, gone).
        problems: Items that could not be recorded or used, and why.
        by_status: Versions of the source in the store per status, after the run.
    """

    source: str
    mode: str
    status: str = "ok"
    error: str | None = None
    checked: int = 0
    new_versions: int = 0
    approved: int = 0
    retired: int = 0
    problems: tuple[str, ...] = ()
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def unavailable(self) -> bool:
        return self.status == "unavailable"

    def counts(self) -> dict[str, int]:
        return {
            "checked": self.checked,
            "new_versions": self.new_versions,
            "approved": self.approved,
            "retired": self.retired,
            "problems": len(self.problems),
        }

    def summary(self) -> str:
        """`wordpress sync: ok, 12 checked, 1 new version, ...` for logs and the CLI."""
        counts = ", ".join(f"{value} {name.replace('_', ' ')}"
                           for name, value in self.counts().items())
        text = f"{self.source} {self.mode}: {self.status}, {counts}"
        if self.unavailable:
            text += f"; unavailable ({self.error}): the last approved content stays in force"
        return text


class _Tally:
    """Counts of one run, added to as items are recorded."""

    def __init__(self, source: str, mode: str):
        self.result = SyncResult(source, mode)

    def add(self, recorded: Recorded) -> None:
        r = self.result
        self.result = replace(
            r, checked=r.checked + 1, new_versions=r.new_versions + recorded.inserted,
            approved=r.approved + recorded.approved, retired=r.retired + recorded.retired,
        )

    def gone(self, retired: int) -> None:
        r = self.result
        self.result = replace(r, checked=r.checked + 1, retired=r.retired + retired)

    def problem(self, text: str) -> None:
        self.result = replace(self.result, problems=(*self.result.problems, text))


def refresh_item(
    connector: CmsConnector, store: CmsStore, external_id: str, locale: str,
    now: dt.datetime,
) -> tuple[Recorded | None, int]:
    """Fetch an item's current version and record it; an item that is gone is retired.

    Returns:
        What was recorded (None when the item is gone) and how many approved versions a
        404 or 410 retired.

    Raises:
        CmsUnavailable: The source cannot be reached.
        CmsError: The item cannot be read (the message says why).
    """
    try:
        item = connector.fetch(external_id, locale)
    except CmsNotFound as exc:
        return None, store.retire(connector.source, external_id, locale, now,
                                  f"gone: {_short(exc)}")
    if (item.source, item.external_id, item.locale) != (connector.source, external_id, locale):
        raise CmsError(
            f"{connector.source} connector fetched {external_id} ({locale}) but returned "
            f"{item.source} item {item.external_id} ({item.locale})"
        )
    recorded = store.record(item, now)
    return recorded, 0


def sync(connector: CmsConnector, store: CmsStore, now: dt.datetime) -> SyncResult:
    """Record every item changed since the source's cursor (see the module docstring)."""
    tally = _Tally(connector.source, "sync")
    seen: set[tuple[str, str]] = set()
    try:
        for page in connector.changes_since(store.cursor(connector.source)):
            for ref in page.items:
                if (ref.external_id, ref.locale) in seen:
                    continue
                seen.add((ref.external_id, ref.locale))
                _refresh(connector, store, ref.external_id, ref.locale, now, tally)
                if not ref.deleted:
                    _record_listed_version(connector, store, ref, now, tally)
            if page.cursor is not None:
                store.set_cursor(connector.source, page.cursor, now)
    except CmsUnavailable as exc:
        return _finish(store, tally, now, exc)
    except (CmsError, *_MALFORMED) as exc:
        return _finish(store, tally, now, _unreadable(exc))
    return _finish(store, tally, now, None)


# What a connector raises on an answer of the wrong shape it did not check itself.
_MALFORMED = (KeyError, TypeError, AttributeError, ValueError, IndexError)


def _unreadable(exc: Exception) -> CmsUnavailable:
    """A listing the connector could not read ends the source's run as unavailable: what
    was recorded stays, and the last approved content stays in force."""
    return CmsUnavailable(f"unreadable answer: {_describe(exc)}")


def _describe(exc: Exception) -> str:
    if isinstance(exc, CmsError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _record_listed_version(connector: CmsConnector, store: CmsStore, ref: ItemRef,
                           now: dt.datetime, tally: _Tally) -> None:
    """A listing may name a published version behind a newer draft (AEM lists the live
    version of a fragment with unpublished changes). When the current version is not
    approved and the listed one was never recorded, fetch it; if it is approved with a body
    not already recorded as approved, record it too, so what is live is in the registry
    even if q2c first saw the item mid-edit."""
    recorded_versions = store.item_versions(connector.source, ref.external_id, ref.locale)
    if not recorded_versions or recorded_versions[-1].status == "approved":
        return
    if any(v.source_version == ref.source_version for v in recorded_versions):
        return
    try:
        item = connector.fetch(ref.external_id, ref.locale, ref.source_version)
    except CmsUnavailable:
        raise
    except (CmsError, *_MALFORMED) as exc:
        tally.problem(f"{connector.source} item {ref.external_id} ({ref.locale}) version "
                      f"{ref.source_version}: {_describe(exc)}")
        return
    if item.status != "approved" or any(
        v.status == "approved" and v.raw_sha256 == item.sha256 for v in recorded_versions
    ):
        return
    try:
        recorded = store.record(item, now)
    except CmsError as exc:
        tally.problem(f"{connector.source} item {ref.external_id} ({ref.locale}) version "
                      f"{ref.source_version}: {_describe(exc)}")
        return
    tally.add(recorded)
    if recorded.changed and becomes_entry(recorded.version):
        _, problems = build_entries([recorded.version], store)
        for text in problems:
            tally.problem(text)


def reconcile(connector: CmsConnector, store: CmsStore, now: dt.datetime) -> SyncResult:
    """Fetch every item the store knows of the source and record what changed."""
    tally = _Tally(connector.source, "reconcile")
    try:
        for external_id, locale in store.known_items(connector.source):
            _refresh(connector, store, external_id, locale, now, tally)
    except CmsUnavailable as exc:
        return _finish(store, tally, now, exc)
    except (CmsError, *_MALFORMED) as exc:
        return _finish(store, tally, now, _unreadable(exc))
    return _finish(store, tally, now, None)


def _refresh(connector: CmsConnector, store: CmsStore, external_id: str, locale: str,
             now: dt.datetime, tally: _Tally) -> None:
    try:
        recorded, gone = refresh_item(connector, store, external_id, locale, now)
    except CmsUnavailable:
        raise
    except (CmsError, *_MALFORMED) as exc:
        text = f"{connector.source} item {external_id} ({locale}): {_describe(exc)}"
        log.warning("cms %s", text)
        tally.problem(text)
        return
    if recorded is None:
        tally.gone(gone)
        return
    tally.add(recorded)
    if recorded.changed and becomes_entry(recorded.version):
        _, problems = build_entries([recorded.version], store)
        for text in problems:
            log.warning("cms %s: not usable by the registry: %s", connector.source, text)
            tally.problem(text)


def _finish(store: CmsStore, tally: _Tally, started: dt.datetime,
            error: CmsUnavailable | None) -> SyncResult:
    result = tally.result
    if error is not None:
        result = replace(result, status="unavailable", error=_short(error))
    result = replace(result, by_status=store.counts(result.source))
    store.record_sync(result.source, result.mode, result.status, started, result.error,
                      result.counts())
    if result.unavailable:
        log.warning("cms %s", result.summary())
    else:
        log.info("cms %s", result.summary())
    return result


def sync_and_reconcile(
    connector: CmsConnector, store: CmsStore, now: dt.datetime, reconcile_all: bool = True
) -> list[SyncResult]:
    """The nightly step of one source: sync, then (unless the source is down) reconcile."""
    results = [sync(connector, store, now)]
    if reconcile_all and not results[0].unavailable:
        results.append(reconcile(connector, store, now))
    return results


def _short(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."
