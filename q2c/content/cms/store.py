"""The CMS store: every fetched item version, its sanitized body, and the sources' cursors.

One row of `cms_items` (ops store) per version q2c has seen of an item in one locale: where
it came from (source, external id, locale, source version and state), q2c's status, the
SHA-256 of the sanitized body and of the body as fetched, when it was fetched, who
approved it, when it was retired, and the slot it fills (kind, content id, case,
placement, targeting). The body is written once to `$Q2C_HOME/cms/<source>/<sha256>/`,
named for its locale (`de.html`, `en.txt`): content-addressed, never overwritten, so the
hash a sent document pins always finds its bytes.

How a fetch changes what is recorded:

- A body or version not seen before is a new row, with the item's status.
- A draft row that comes back approved becomes approved. Approving gives the row its q2c
  version number: the next one of its entry id (`<content_id>.<locale>`), in the order
  approvals are seen, kept for good.
- A retired item (trashed, unpublished, deleted, 404/410) retires every approved row of
  it, from `retired_at`. The same version coming back as a draft is an unpublish, and
  retires it too. A newer draft never touches an approved row, unless the item says its
  system keeps no published copy apart from it (`withdraws_approved`, WordPress): then a
  current version that is not approved retires every approved row, from `now`.
- A retired row approved again is a new row with a new version number: the retirement
  stays on record.

Writes happen in one `BEGIN IMMEDIATE` transaction each, so a sensor and a nightly run
fetching the same item at once record it once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from q2c.content.cms.base import CmsError, CmsItem
from q2c.content.cms.sanitize import SanitizedBody, sanitize_item
from q2c.content.registry import normalize_language
from q2c.opsdb import connect, ensure_schema, transaction

log = logging.getLogger(__name__)

_DDL = """
create table if not exists cms_items (
    row_id integer primary key autoincrement,
    source text not null,
    external_id text not null,
    locale text not null,
    source_version text not null,
    source_status text not null,
    status text not null check (status in ('draft', 'approved', 'retired')),
    kind text not null,
    content_id text not null,
    entry_id text not null,
    version integer,
    title text not null default '',
    media_type text not null,
    sha256 text not null,
    raw_sha256 text not null,
    body_file text not null,
    modified_at text not null,
    fetched_at text not null,
    approved_by text,
    approved_at text,
    retired_at text,
    targeting text not null default '{}',
    legal_case text,
    placement text,
    metadata text not null default '{}'
);
create index if not exists cms_items_item on cms_items (source, external_id, locale);
create unique index if not exists cms_items_version on cms_items (entry_id, version)
    where version is not null;
create table if not exists cms_cursors (
    source text primary key,
    cursor text,
    updated_at text not null
);
create table if not exists cms_events (
    event_row integer primary key autoincrement,
    source text not null,
    received_at text not null,
    taken_at text not null,
    event_id text,
    action text,
    external_id text,
    locale text,
    event_version text,
    event_sha256 text,
    api_version text,
    api_sha256 text,
    matches integer,
    outcome text not null,
    detail text not null default ''
);
create table if not exists cms_syncs (
    sync_row integer primary key autoincrement,
    source text not null,
    mode text not null,
    status text not null,
    started_at text not null,
    error text,
    counts text not null default '{}'
);
"""

_COLUMNS = (
    "source external_id locale source_version source_status status kind content_id entry_id "
    "version title media_type sha256 raw_sha256 body_file modified_at fetched_at approved_by "
    "approved_at retired_at targeting legal_case placement metadata"
).split()


def entry_id(content_id: str, locale: str) -> str:
    """The registry id of an item's versions in one locale: `late_payment_de.de`.

    Language versions of one item change on their own, so each is its own id in the slot
    the content id names; a reader gets the language version its targeting matches.
    """
    return f"{content_id}.{normalize_language(locale) or locale}"


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat()


def _moment(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class StoredVersion:
    """One row of `cms_items`: one version of one item in one locale, as q2c recorded it."""

    row_id: int
    source: str
    external_id: str
    locale: str
    source_version: str
    source_status: str
    status: str
    kind: str
    content_id: str
    entry_id: str
    version: int | None
    title: str
    media_type: str
    sha256: str
    raw_sha256: str
    body_file: str
    modified_at: dt.datetime
    fetched_at: dt.datetime
    approved_by: str | None
    approved_at: dt.datetime | None
    retired_at: dt.datetime | None
    targeting: Mapping[str, object] = field(default_factory=dict)
    case: str | None = None
    placement: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """`wordpress item 42 (de) version 7`, as logs and results name it."""
        return (f"{self.source} item {self.external_id} ({self.locale}) version "
                f"{self.source_version}")

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredVersion:
        return cls(
            row_id=row["row_id"],
            source=row["source"],
            external_id=row["external_id"],
            locale=row["locale"],
            source_version=row["source_version"],
            source_status=row["source_status"],
            status=row["status"],
            kind=row["kind"],
            content_id=row["content_id"],
            entry_id=row["entry_id"],
            version=row["version"],
            title=row["title"],
            media_type=row["media_type"],
            sha256=row["sha256"],
            raw_sha256=row["raw_sha256"],
            body_file=row["body_file"],
            modified_at=_moment(row["modified_at"]),
            fetched_at=_moment(row["fetched_at"]),
            approved_by=row["approved_by"],
            approved_at=_moment(row["approved_at"]),
            retired_at=_moment(row["retired_at"]),
            targeting=json.loads(row["targeting"] or "{}"),
            case=row["legal_case"],
            placement=row["placement"],
            metadata=json.loads(row["metadata"] or "{}"),
        )


@dataclass(frozen=True)
class Recorded:
    """What one fetch changed in the store.

    Attributes:
        version: The row of the fetched version.
        inserted: A row was added (a version or body not seen before).
        approved: The fetched version became approved now.
        retired: How many approved rows of the item this fetch retired.
    """

    version: StoredVersion
    inserted: bool = False
    approved: bool = False
    retired: int = 0

    @property
    def changed(self) -> bool:
        return self.inserted or self.approved or bool(self.retired)


class CmsStore:
    """The CMS store of one ops database and one body folder.

    Args:
        db_path: The ops store (`settings.ops_store`).
        body_dir: Where bodies are written (`settings.cms_dir`, `$Q2C_HOME/cms`).
    """

    def __init__(self, db_path: Path, body_dir: Path):
        self.db_path = Path(db_path)
        self.body_dir = Path(body_dir).resolve()
        with connect(self.db_path) as conn:
            ensure_schema(conn, _DDL)

    @classmethod
    def from_settings(cls, settings) -> CmsStore:
        return cls(settings.ops_store, settings.cms_dir)

    # Bodies

    def body_path(self, version: StoredVersion) -> Path:
        return self.body_dir / version.body_file

    def write_body(self, source: str, locale: str, body: SanitizedBody) -> str:
        """Write a body once under `<source>/<sha256>/`; return its path relative to the
        body folder. An existing file is never replaced.

        Raises:
            CmsError: When a file already there no longer holds the bytes of its hash.
        """
        name = _file_stem(locale) + body.suffix
        relative = f"{_safe_part(source)}/{body.sha256}/{name}"
        path = self.body_dir / relative
        if path.exists():
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if actual != body.sha256:
                raise CmsError(
                    f"stored CMS body {path} changed after it was written (sha256 "
                    f"{actual[:12]}…, named for {body.sha256[:12]}…); bodies are never "
                    "replaced: delete the file so the next sync writes it again"
                )
            return relative
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
        partial.write_bytes(body.body)
        try:
            os.link(partial, path)
        except FileExistsError:
            pass  # written by another process at the same moment: the same bytes
        finally:
            partial.unlink(missing_ok=True)
        return relative

    # Versions

    def record(self, item: CmsItem, now: dt.datetime) -> Recorded:
        """Record one fetched item version (rules in the module docstring)."""
        body = sanitize_item(item)
        if body.changed:
            log.info("cms %s item %s (%s) version %s: markup outside the allowlist removed",
                     item.source, item.external_id, item.locale, item.source_version)
        body_file = self.write_body(item.source, item.locale, body)
        with connect(self.db_path) as conn, transaction(conn):
            found = conn.execute(
                "select * from cms_items where source = ? and external_id = ? and locale = ? "
                "and source_version = ? and raw_sha256 = ? order by row_id desc limit 1",
                (item.source, item.external_id, item.locale, item.source_version,
                 body.raw_sha256),
            ).fetchone()
            previous = StoredVersion.from_row(found) if found else None
            recorded = self._apply(conn, item, body, body_file, previous, now)
            if item.withdraws_approved and item.status != "approved":
                withdrawn = self._retire(conn, item, item.retired_at or now)
                if withdrawn:
                    recorded = replace(recorded, version=self._row(conn, recorded.version.row_id),
                                       retired=recorded.retired + withdrawn)
        if recorded.changed:
            row = recorded.version
            log.info(
                "cms %s: %s%s (%s, sha256 %s…)%s", item.source, row.label,
                " recorded" if recorded.inserted else "", row.status, row.sha256[:12],
                f", {recorded.retired} approved version(s) retired" if recorded.retired else "",
            )
        return recorded

    def _apply(
        self, conn: sqlite3.Connection, item: CmsItem, body: SanitizedBody, body_file: str,
        previous: StoredVersion | None, now: dt.datetime,
    ) -> Recorded:
        retired_at = item.retired_at or now
        if previous is None or (previous.status == "retired" and item.status == "approved"):
            if previous is None and _found_other_body(conn, item, body.raw_sha256):
                log.warning(
                    "cms %s item %s (%s): version %s has a new body without a new version "
                    "number; recorded as its own version", item.source, item.external_id,
                    item.locale, item.source_version,
                )
            row = self._insert(conn, item, body, body_file, now)
            retired = self._retire(conn, item, retired_at) if item.status == "retired" else 0
            return Recorded(row, inserted=True, approved=item.status == "approved",
                            retired=retired)
        if item.status == previous.status:
            return Recorded(previous)
        if item.status == "approved":  # draft -> approved
            conn.execute(
                "update cms_items set status = 'approved', version = ?, source_status = ?, "
                "approved_by = ?, approved_at = ? where row_id = ?",
                (self._next_version(conn, previous.entry_id), item.source_status,
                 item.approved_by, _iso(item.approved_at or now), previous.row_id),
            )
            return Recorded(self._row(conn, previous.row_id), approved=True)
        if previous.status == "approved" or item.status == "retired":
            # Retired, or this very version unpublished back to a draft: withdrawn.
            retired = self._retire(conn, item, retired_at)
            if previous.status == "draft":
                conn.execute(
                    "update cms_items set status = 'retired', source_status = ?, retired_at = ? "
                    "where row_id = ?", (item.source_status, _iso(retired_at), previous.row_id),
                )
            return Recorded(self._row(conn, previous.row_id), retired=retired)
        return Recorded(previous)  # a retired version seen as a draft stays retired

    def _insert(self, conn: sqlite3.Connection, item: CmsItem, body: SanitizedBody,
                body_file: str, now: dt.datetime) -> StoredVersion:
        entry = entry_id(item.content_id, item.locale)
        approved = item.status == "approved"
        values = {
            "source": item.source,
            "external_id": item.external_id,
            "locale": item.locale,
            "source_version": item.source_version,
            "source_status": item.source_status,
            "status": item.status,
            "kind": item.kind,
            "content_id": item.content_id,
            "entry_id": entry,
            "version": self._next_version(conn, entry) if approved else None,
            "title": item.title or "",
            "media_type": body.media_type,
            "sha256": body.sha256,
            "raw_sha256": body.raw_sha256,
            "body_file": body_file,
            "modified_at": _iso(item.modified_at),
            "fetched_at": _iso(now),
            "approved_by": item.approved_by,
            "approved_at": _iso(item.approved_at or (now if approved else None)),
            "retired_at": _iso(item.retired_at or now) if item.status == "retired" else None,
            "targeting": json.dumps(_targeting_json(item.targeting), sort_keys=True),
            "legal_case": item.case,
            "placement": item.placement,
            "metadata": json.dumps(dict(item.metadata), sort_keys=True, default=str),
        }
        cursor = conn.execute(
            f"insert into cms_items ({', '.join(_COLUMNS)}) "
            f"values ({', '.join('?' for _ in _COLUMNS)})",
            [values[name] for name in _COLUMNS],
        )
        return self._row(conn, cursor.lastrowid)

    def _retire(self, conn: sqlite3.Connection, item: CmsItem, at: dt.datetime) -> int:
        return self._retire_item(conn, item.source, item.external_id, item.locale, at,
                                 item.source_status)

    @staticmethod
    def _retire_item(conn: sqlite3.Connection, source: str, external_id: str, locale: str,
                     at: dt.datetime, source_status: str) -> int:
        return conn.execute(
            "update cms_items set status = 'retired', retired_at = ?, source_status = ? "
            "where source = ? and external_id = ? and locale = ? and status = 'approved'",
            (_iso(at), source_status, source, external_id, locale),
        ).rowcount

    def retire(self, source: str, external_id: str, locale: str, at: dt.datetime,
               why: str) -> int:
        """Retire every approved version of an item (gone: 404, 410, deleted); `why` is
        kept as its source status. Returns how many versions were retired."""
        with connect(self.db_path) as conn, transaction(conn):
            count = self._retire_item(conn, source, external_id, locale, at, why)
        if count:
            log.info("cms %s item %s (%s): %d approved version(s) retired from %s (%s)",
                     source, external_id, locale, count, _iso(at), why)
        return count

    @staticmethod
    def _next_version(conn: sqlite3.Connection, entry: str) -> int:
        row = conn.execute(
            "select coalesce(max(version), 0) from cms_items where entry_id = ?", (entry,)
        ).fetchone()
        return int(row[0]) + 1

    @staticmethod
    def _row(conn: sqlite3.Connection, row_id: int) -> StoredVersion:
        row = conn.execute("select * from cms_items where row_id = ?", (row_id,)).fetchone()
        return StoredVersion.from_row(row)

    # Reading

    def versions(
        self, sources: Iterable[str] | None = None, statuses: Iterable[str] | None = None
    ) -> list[StoredVersion]:
        """Recorded versions, in the order they were first recorded."""
        query, params = "select * from cms_items", []
        clauses = []
        if sources is not None:
            names = list(sources)
            clauses.append(f"source in ({', '.join('?' for _ in names)})")
            params += names
        if statuses is not None:
            wanted = list(statuses)
            clauses.append(f"status in ({', '.join('?' for _ in wanted)})")
            params += wanted
        if clauses:
            query += " where " + " and ".join(clauses)
        with connect(self.db_path) as conn:
            rows = conn.execute(query + " order by row_id", params).fetchall()
        return [StoredVersion.from_row(row) for row in rows]

    def item_versions(self, source: str, external_id: str, locale: str) -> list[StoredVersion]:
        """Every recorded version of one item in one locale, oldest first."""
        with connect(self.db_path) as conn:
            rows = conn.execute(
                "select * from cms_items where source = ? and external_id = ? and locale = ? "
                "order by row_id", (source, external_id, locale),
            ).fetchall()
        return [StoredVersion.from_row(row) for row in rows]

    def known_items(self, source: str) -> list[tuple[str, str]]:
        """(external id, locale) of every item of `source` q2c has recorded."""
        with connect(self.db_path) as conn:
            rows = conn.execute(
                "select external_id, locale, min(row_id) as first from cms_items "
                "where source = ? group by external_id, locale order by first", (source,),
            ).fetchall()
        return [(row["external_id"], row["locale"]) for row in rows]

    def locales_of(self, source: str, external_id: str) -> list[str]:
        return [locale for ext, locale in self.known_items(source) if ext == external_id]

    def counts(self, source: str) -> dict[str, int]:
        """Versions recorded per status, for one source."""
        with connect(self.db_path) as conn:
            rows = conn.execute(
                "select status, count(*) as n from cms_items where source = ? group by status",
                (source,),
            ).fetchall()
        found = {row["status"]: row["n"] for row in rows}
        return {status: found.get(status, 0) for status in ("draft", "approved", "retired")}

    # Cursors

    def cursor(self, source: str) -> str | None:
        with connect(self.db_path) as conn:
            row = conn.execute(
                "select cursor from cms_cursors where source = ?", (source,)
            ).fetchone()
        return row["cursor"] if row else None

    def set_cursor(self, source: str, cursor: str | None, now: dt.datetime) -> None:
        with connect(self.db_path) as conn, transaction(conn):
            conn.execute(
                "insert into cms_cursors (source, cursor, updated_at) values (?, ?, ?) "
                "on conflict (source) do update set cursor = excluded.cursor, "
                "updated_at = excluded.updated_at",
                (source, cursor, _iso(now)),
            )

    # Events and runs

    def record_event(self, source: str, received_at: dt.datetime, taken_at: dt.datetime,
                     outcome: str, detail: str = "", **fields: object) -> int:
        """Append one publish event and what came of it to `cms_events`."""
        known = ("event_id", "action", "external_id", "locale", "event_version",
                 "event_sha256", "api_version", "api_sha256", "matches")
        unknown = set(fields) - set(known)
        if unknown:
            raise TypeError(f"record_event: unknown fields {', '.join(sorted(unknown))}")
        values = [fields.get(name) for name in known]
        with connect(self.db_path) as conn, transaction(conn):
            cursor = conn.execute(
                f"insert into cms_events (source, received_at, taken_at, outcome, detail, "
                f"{', '.join(known)}) values (?, ?, ?, ?, ?, {', '.join('?' for _ in known)})",
                [source, _iso(received_at), _iso(taken_at), outcome, detail, *values],
            )
        return int(cursor.lastrowid)

    def events(self, source: str | None = None) -> list[dict]:
        with connect(self.db_path) as conn:
            rows = conn.execute(
                "select * from cms_events" + (" where source = ?" if source else "")
                + " order by event_row", (source,) if source else (),
            ).fetchall()
        return [dict(row) for row in rows]

    def record_sync(self, source: str, mode: str, status: str, started_at: dt.datetime,
                    error: str | None, counts: Mapping[str, int]) -> None:
        with connect(self.db_path) as conn, transaction(conn):
            conn.execute(
                "insert into cms_syncs (source, mode, status, started_at, error, counts) "
                "values (?, ?, ?, ?, ?, ?)",
                (source, mode, status, _iso(started_at), error, json.dumps(dict(counts))),
            )

    def last_sync(self, source: str) -> dict | None:
        with connect(self.db_path) as conn:
            row = conn.execute(
                "select * from cms_syncs where source = ? order by sync_row desc limit 1",
                (source,),
            ).fetchone()
        return dict(row) if row else None


def _found_other_body(conn: sqlite3.Connection, item: CmsItem, raw_sha256: str) -> bool:
    """Whether this source version was recorded before with another body."""
    return conn.execute(
        "select 1 from cms_items where source = ? and external_id = ? and locale = ? "
        "and source_version = ? and raw_sha256 != ? limit 1",
        (item.source, item.external_id, item.locale, item.source_version, raw_sha256),
    ).fetchone() is not None


def _targeting_json(targeting: Mapping[str, object]) -> dict[str, list[str]]:
    found = {}
    for name, values in targeting.items():
        items = [values] if isinstance(values, str) else list(values or ())
        found[str(name)] = [str(value) for value in items]
    return found


def _file_stem(locale: str) -> str:
    """A body's file name: its language (`de` for `de-AT`), as the registry targets it, so
    a document records the language it printed."""
    tag = normalize_language(locale).split("-")[0]
    return tag if tag and _safe_part(tag) == tag else "body"


def _safe_part(text: str) -> str:
    """A path part made of letters, digits, `-`, `_` and `.` only (never `..`)."""
    cleaned = "".join(char if char.isalnum() or char in "-_." else "_" for char in text)
    return cleaned.strip(".") or "_"
