"""How late each raw table's last sync is, judged by the sync time in the data itself.

A loading tool stamps every row it writes with `_fivetran_synced`; the newest stamp of a
table says when the source last reached the warehouse. When q2c copies an old export again,
the copy is new but the data is not, so the time q2c loaded a table never counts. A table
landed without that column falls back to the modification time of its landing file.

Limits are per source (`freshness` in q2c.yaml, `Q2C_FRESHNESS`): a table is late after
`warn_after` and very late after `fail_after`. The defaults, 26 and 50 hours, fit a nightly
sync: one missed night warns, two fail.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from q2c.sources.schema import SOURCES, SYNC, RawTable, tables_of

if TYPE_CHECKING:
    import duckdb

FRESH = "fresh"
LATE = "late"
VERY_LATE = "very_late"
UNKNOWN = "unknown"

SYNC_COLUMN = "sync column"
LANDING_FILE = "landing file"


@dataclass(frozen=True)
class FreshnessLimits:
    """When a source's sync counts as late (warn) and very late (fail)."""

    warn_after: dt.timedelta = dt.timedelta(hours=26)
    fail_after: dt.timedelta = dt.timedelta(hours=50)

    def describe(self) -> str:
        return f"warn after {_hours(self.warn_after)}, fail after {_hours(self.fail_after)}"


@dataclass(frozen=True)
class FreshnessSettings:
    """The default limits and those of sources that sync on another rhythm."""

    default: FreshnessLimits = FreshnessLimits()
    per_source: tuple[tuple[str, FreshnessLimits], ...] = ()

    def for_source(self, source: str) -> FreshnessLimits:
        return dict(self.per_source).get(source, self.default)


@dataclass(frozen=True)
class LastSync:
    """The newest sync time found for one raw table, and what it was read from."""

    relation: str
    synced_at: dt.datetime | None
    basis: str | None
    rows: int
    where: str = ""


@dataclass(frozen=True)
class Freshness:
    """One table's verdict at a reference time."""

    last: LastSync
    limits: FreshnessLimits
    status: str
    age: dt.timedelta | None
    message: str


def parse_freshness(value: object) -> FreshnessSettings:
    """The limits from q2c.yaml (`freshness:`) or `Q2C_FRESHNESS`.

    The variable reads `26/50,stripe=6/24`: hours to warn and to fail, first for every source,
    then per source. q2c.yaml takes the same text, or a mapping of `default` and source names
    to `{warn_after_hours: 26, fail_after_hours: 50}`.

    Raises:
        ValueError: A source q2c does not know, a number that is not one, or a warn limit
            not below the fail limit. The message names the entry and the fix.
    """
    if value is None or value == "":
        return FreshnessSettings()
    entries = _entries(value)
    default = entries.pop("default", FreshnessLimits())
    unknown = sorted(set(entries) - set(SOURCES))
    if unknown:
        raise ValueError(
            f"freshness (Q2C_FRESHNESS): unknown source(s) {', '.join(unknown)}; name "
            f"`default` or one of {', '.join(SOURCES)}"
        )
    return FreshnessSettings(default, tuple(sorted(entries.items())))


def _entries(value: object) -> dict[str, FreshnessLimits]:
    if isinstance(value, dict):
        return {str(name).strip().lower(): _limits_of_mapping(str(name), limits)
                for name, limits in value.items()}
    entries = {}
    for part in (p.strip() for p in str(value).split(",")):
        if not part:
            continue
        name, _, hours = part.rpartition("=")
        entries[name.strip().lower() or "default"] = _limits_of_text(part, hours)
    return entries


def _limits_of_mapping(name: str, limits: object) -> FreshnessLimits:
    if not isinstance(limits, dict) or set(limits) != {"warn_after_hours", "fail_after_hours"}:
        raise ValueError(
            f"freshness: {name} must map warn_after_hours and fail_after_hours, e.g. "
            "{warn_after_hours: 26, fail_after_hours: 50}"
        )
    return _limits(name, limits["warn_after_hours"], limits["fail_after_hours"])


def _limits_of_text(entry: str, hours: str) -> FreshnessLimits:
    warn, _, fail = hours.partition("/")
    if not fail:
        raise ValueError(
            f"freshness (Q2C_FRESHNESS): {entry!r} gives no fail limit; write warn/fail hours, "
            "e.g. 26/50 or stripe=6/24"
        )
    return _limits(entry, warn.strip().removesuffix("h"), fail.strip().removesuffix("h"))


def _limits(entry: str, warn: object, fail: object) -> FreshnessLimits:
    try:
        warn_hours, fail_hours = float(str(warn)), float(str(fail))
    except ValueError as exc:
        raise ValueError(
            f"freshness (Q2C_FRESHNESS): {entry!r} holds {warn!r} and {fail!r}; give hours "
            "as numbers, e.g. 26/50"
        ) from exc
    if not 0 < warn_hours < fail_hours:
        raise ValueError(
            f"freshness (Q2C_FRESHNESS): {entry!r} warns after {warn_hours:g} h and fails "
            f"after {fail_hours:g} h; the warn limit must be above 0 and below the fail limit"
        )
    return FreshnessLimits(dt.timedelta(hours=warn_hours), dt.timedelta(hours=fail_hours))


def reference_time(as_of: dt.date | None, now: dt.datetime) -> dt.datetime:
    """The moment syncs are judged at: now, or the end of a pinned business day gone by.

    A run pinned to an earlier business date (`Q2C_AS_OF`) sees the data as it stood that
    day, so its tables are judged at the end of that day, not years later.
    """
    if as_of is None:
        return now
    end_of_day = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return min(now, end_of_day)


def assess(last: LastSync, limits: FreshnessLimits, at: dt.datetime) -> Freshness:
    """Fresh, late (past `warn_after`), very late (past `fail_after`), or unknown."""
    if last.synced_at is None:
        return Freshness(last, limits, UNKNOWN, None, (
            f"{last.relation}: cannot tell when it was last synced: "
            f"{last.where or 'no row carries ' + SYNC + ' and no landing file was found'}. "
            f"Land it with its {SYNC} column (or from a file), then run the ingest again"
        ))

    age = max(at - last.synced_at, dt.timedelta(0))
    status = (VERY_LATE if age > limits.fail_after else LATE if age > limits.warn_after
              else FRESH)
    said = {FRESH: "fresh", LATE: "late", VERY_LATE: "very late"}[status]
    message = (
        f"{last.relation} last synced {last.synced_at:%Y-%m-%d %H:%M} UTC ({last.basis} "
        f"{last.where}), {_hours(age)} before {at:%Y-%m-%d %H:%M} UTC: {said} "
        f"({limits.describe()})"
    )
    if status != FRESH:
        message += "; check the loading tool's sync of this source, or its landing files"
    return Freshness(last, limits, status, age, message)


def last_syncs(conn: duckdb.DuckDBPyConnection, source: str) -> list[LastSync]:
    """The newest sync time of every raw table of `source` in the warehouse.

    Text stamps without an offset are UTC, as loading tools write them.
    """
    conn.execute("set TimeZone = 'UTC'")
    return [_last_sync(conn, table) for table in tables_of(source)]


def _last_sync(conn: duckdb.DuckDBPyConnection, table: RawTable) -> LastSync:
    relation = f"{table.schema}.{table.name}"
    present = {name for (name,) in conn.execute(
        "select column_name from information_schema.columns where table_schema = ? "
        "and table_name = ?", [table.schema, table.name]).fetchall()}
    if not present:
        return LastSync(relation, None, None, 0, "the table has not been loaded yet")

    synced = f'try_cast("{SYNC}" as timestamptz)' if SYNC in present else "null"
    source_file = "max(_q2c_source_file)" if "_q2c_source_file" in present else "null"
    rows, newest, file = conn.execute(
        f"select count(*), max({synced}), {source_file} from {table.relation}"
    ).fetchone()
    if newest is not None:
        return LastSync(relation, newest.astimezone(dt.UTC), SYNC_COLUMN, rows, SYNC)
    return _landing_file_time(conn, table, relation, rows, file)


def _landing_file_time(conn, table: RawTable, relation: str, rows: int,
                       file: str | None) -> LastSync:
    """The landing file's modification time, for a table whose rows carry no sync stamp."""
    file = file or _last_ingested_file(conn, table)
    if not file:
        return LastSync(relation, None, None, rows,
                        f"no row carries {SYNC} and the last ingest found no landing file")
    path = Path(file)
    if not path.is_file():
        return LastSync(relation, None, None, rows,
                        f"no row carries {SYNC} and its landing file {path} is gone")
    modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    return LastSync(relation, modified, LANDING_FILE, rows, str(path))


def _last_ingested_file(conn, table: RawTable) -> str | None:
    import duckdb

    from q2c.warehouse import OPS_SCHEMA

    try:
        row = conn.execute(
            f"select file from {OPS_SCHEMA}.ingest_report where source = ? and table_name = ? "
            "order by loaded_at desc limit 1", [table.source, table.name]).fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row and row[0] else None


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h".replace(".0 h", " h")
