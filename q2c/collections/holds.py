"""Account owners' holds on dunning: no reminder to an account until a given day.

An account owner who is negotiating with a customer, or knows a payment is on its way,
holds the account (`q2c collections hold ACCOUNT --until DATE --reason TEXT`). Holds are
records people write while runs work, so they live in the operational store (SQLite, the
truth) beside the outbox, in `collection_holds`, and are never deleted: a release or a new
hold on the same account closes the one before with who, when and why. A hold is in force
from the day it was set to its last day, inclusive, unless released earlier. Days are the
seller's, like the run's business date and the due dates: each hold records the seller's
day it was set (`held_on`) and released (`released_on`) on, so a reader needs no time zone.
Reasons and names are one line of plain text, printed escaped all the same.

`export_holds` copies every hold into the warehouse (`q2c_ops.collection_holds`, a full
replacement in one transaction) for dbt: the dunning mart marks the account's invoices
`owner_hold`. The reminder run also asks the store itself right before queueing, so a
hold set after the marts were built still stops the reminder.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from q2c.opsdb import connect, ensure_schema, transaction
from q2c.settings import business_date
from q2c.warehouse import OPS_SCHEMA

logger = logging.getLogger(__name__)

HOLDS_TABLE = "collection_holds"

HOLDS_DDL = f"""
create table if not exists {HOLDS_TABLE} (
    hold_id integer primary key autoincrement,
    account_key text not null,
    account_name text,
    held_until text not null,
    reason text not null,
    held_by text not null,
    held_at text not null,
    released_at text,
    released_by text,
    release_reason text,
    held_on text,
    released_on text
);
create index if not exists collection_holds_account on {HOLDS_TABLE} (account_key);
"""
# Columns added after the first release: (name, type), added to an older table on open.
_ADDED_COLUMNS = (("held_on", "text"), ("released_on", "text"))
REASON_LIMIT = 500
NAME_LIMIT = 100
# Characters that move the cursor, recolour or reorder a terminal line: never stored.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")

# (column, warehouse type), in the store's column names.
_COLUMNS = (
    ("hold_id", "bigint"), ("account_key", "varchar"), ("account_name", "varchar"),
    ("held_until", "date"), ("reason", "varchar"), ("held_by", "varchar"),
    ("held_at", "timestamp"), ("released_at", "timestamp"), ("released_by", "varchar"),
    ("release_reason", "varchar"),
)

WAREHOUSE_DDL = (
    f"create schema if not exists {OPS_SCHEMA};\n"
    f"create table if not exists {OPS_SCHEMA}.{HOLDS_TABLE} (\n    "
    + ",\n    ".join(f"{name} {kind}" for name, kind in _COLUMNS)
    + "\n);"
)

_ACCOUNT_SQL = """
select account_key, account_name
from core.dim_accounts
where account_key = ? or crm_account_id = ? or erp_customer_id = ?
   or lower(account_name) = lower(?)
order by account_key
"""


class HoldError(ValueError):
    """A hold cannot be set or released; the message says what to give instead."""


@dataclass(frozen=True)
class Hold:
    """One hold on dunning an account."""

    hold_id: int
    account_key: str
    account_name: str | None
    held_until: dt.date
    reason: str
    held_by: str
    held_at: dt.datetime
    released_at: dt.datetime | None = None
    released_by: str | None = None
    release_reason: str | None = None
    # The seller's days it was set and released on; None in rows written before they were
    # recorded, which fall back to the UTC day of held_at and released_at.
    held_on: dt.date | None = None
    released_on: dt.date | None = None

    def in_force_on(self, day: dt.date) -> bool:
        """Set by `day`, its last day not passed, not released by then (seller's days)."""
        held_on = self.held_on or self.held_at.date()
        released_on = self.released_on or (
            self.released_at.date() if self.released_at is not None else None)
        released = released_on is not None and released_on <= day
        return held_on <= day <= self.held_until and not released

    def describe(self) -> str:
        """One line for a terminal or a log, with any control character escaped."""
        name = self.account_key
        if self.account_name:
            name = f"{self.account_name} ({self.account_key})"
        return printable(f"hold {self.hold_id} on {name} until {self.held_until} by "
                         f"{self.held_by}: {self.reason}")


def check_text(value: str, option: str, limit: int) -> str:
    """`value` stripped, as a hold keeps it: one line of plain text, `limit` characters.

    Raises:
        HoldError: It is empty, longer than `limit`, or holds a control character (a line
            break, a tab, an escape sequence, a bidirectional override).
    """
    text = value.strip()
    if not text:
        raise HoldError(f"{option} is empty: say it in a few words")
    if len(text) > limit:
        raise HoldError(f"{option} is {len(text)} characters long; keep it to {limit}")
    bad = next((ch for ch in text if _is_control(ch)), None)
    if bad is not None:
        raise HoldError(f"{option} holds the control character U+{ord(bad):04X} at position "
                        f"{text.index(bad) + 1}; write it as one line of plain text")
    return text


def printable(text: str) -> str:
    """`text` with every control character written as an escape (`\\x1b`, `\\u202e`), so
    a stored value can never move the cursor or recolour the terminal it is printed on."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if _is_control(ch) else ch
                   for ch in text)


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI_CONTROLS


class HoldList:
    """The holds in the operational store at `store_path` (`Settings.ops_store`).

    Args:
        store_path: The SQLite file; the table is created when missing.
        clock: Returns the current time (timezone-aware); tests pin it.
        timezone: The seller's time zone (`settings.seller.timezone`): a hold is set,
            ends and is released on the seller's days, as the runs count them.
    """

    def __init__(self, store_path: Path,
                 clock: Callable[[], dt.datetime] | None = None,
                 timezone: str = "UTC") -> None:
        self.store_path = Path(store_path)
        self._clock = clock or _now
        self._timezone = timezone
        ensure_store(self.store_path)

    def hold(self, account_key: str, until: dt.date, reason: str, by: str,
             account_name: str | None = None) -> Hold:
        """Hold the account until `until` (inclusive); a hold it had is replaced.

        Raises:
            HoldError: No reason or no name given, either one is not one line of plain
                text within its limit, or `until` is already past on the seller's day.
        """
        if not reason.strip() or not by.strip():
            raise HoldError("a hold needs who sets it (--by) and why (--reason)")
        reason = check_text(reason, "--reason", REASON_LIMIT)
        by = check_text(by, "--by", NAME_LIMIT)
        now = self._clock()
        today = business_date(now, self._timezone)
        if until < today:
            raise HoldError(f"--until {until} is already past (it is {today} for the "
                            "seller): give the last day the account is held, today or later")
        with connect(self.store_path) as conn, transaction(conn):
            cursor = conn.execute(
                f"""
                insert into {HOLDS_TABLE} (account_key, account_name, held_until, reason,
                    held_by, held_at, held_on)
                values (?, ?, ?, ?, ?, ?, ?)
                """,
                (account_key, account_name, until.isoformat(), reason, by, _stamp(now),
                 today.isoformat()),
            )
            hold_id = int(cursor.lastrowid)
            replaced = _close_open_holds(conn, account_key, now, today, by,
                                         f"replaced by hold {hold_id}", keep=hold_id)
            row = conn.execute(f"select * from {HOLDS_TABLE} where hold_id = ?",
                               (hold_id,)).fetchone()
        hold = _hold_of(row)
        logger.info("account %s held until %s by %s (%d earlier hold(s) replaced)",
                    account_key, until, by, replaced)
        return hold

    def release(self, account_key: str, by: str, reason: str) -> list[Hold]:
        """End the account's holds now; return them as released.

        Raises:
            HoldError: No name or reason given, or not one line of plain text within its
                limit.
            LookupError: The account has no hold in force on the seller's day.
        """
        if not reason.strip() or not by.strip():
            raise HoldError("releasing a hold needs who releases it (--by) and why (--reason)")
        reason = check_text(reason, "--reason", REASON_LIMIT)
        by = check_text(by, "--by", NAME_LIMIT)
        now = self._clock()
        today = business_date(now, self._timezone)
        with connect(self.store_path) as conn, transaction(conn):
            open_ids = [row[0] for row in conn.execute(
                f"select hold_id from {HOLDS_TABLE} where account_key = ? and "
                "released_at is null and held_until >= ?",
                (account_key, today.isoformat()),
            )]
            if not open_ids:
                raise LookupError(f"account {account_key} has no hold in force: "
                                  "`q2c collections holds` lists them")
            _close_open_holds(conn, account_key, now, today, by, reason)
            rows = conn.execute(
                f"select * from {HOLDS_TABLE} where hold_id in "
                f"({', '.join('?' for _ in open_ids)}) order by hold_id", open_ids,
            ).fetchall()
        logger.info("account %s: %d hold(s) released by %s", account_key, len(rows), by)
        return [_hold_of(row) for row in rows]

    def holds(self) -> list[Hold]:
        """Every hold ever set, oldest first."""
        with connect(self.store_path) as conn:
            rows = conn.execute(f"select * from {HOLDS_TABLE} order by hold_id").fetchall()
        return [_hold_of(row) for row in rows]

    def in_force(self, day: dt.date) -> dict[str, Hold]:
        """The hold in force on `day` per account (the one ending last)."""
        found: dict[str, Hold] = {}
        for hold in self.holds():
            if hold.in_force_on(day):
                current = found.get(hold.account_key)
                if current is None or (hold.held_until, hold.hold_id) > (
                        current.held_until, current.hold_id):
                    found[hold.account_key] = hold
        return found


def resolve_account(conn: duckdb.DuckDBPyConnection, reference: str) -> tuple[str, str | None]:
    """The account a person names: its key, CRM account id, ERP customer id or exact name.

    Raises:
        HoldError: Nothing or more than one account matches, with the candidates.
    """
    text = reference.strip()
    rows = conn.execute(_ACCOUNT_SQL, [text, text, text, text]).fetchall()
    if not rows:
        raise HoldError(f"no account {reference!r} in core.dim_accounts: give the account "
                        "key, the CRM account id, the ERP customer id or the exact name")
    if len(rows) > 1:
        listed = "; ".join(f"{key} ({name})" for key, name in rows[:10])
        raise HoldError(f"{reference!r} names {len(rows)} accounts ({listed}): give the "
                        "account key")
    return str(rows[0][0]), rows[0][1]


def export_holds(store_conn: sqlite3.Connection, duck_conn: duckdb.DuckDBPyConnection) -> int:
    """Replace the warehouse copy with every hold of the store; return the rows copied."""
    rows = store_conn.execute(f"select * from {HOLDS_TABLE} order by hold_id").fetchall()
    values = [tuple(_warehouse_value(kind, row[name]) for name, kind in _COLUMNS)
              for row in rows]
    duck_conn.execute(WAREHOUSE_DDL)
    duck_conn.execute("begin transaction")
    try:
        duck_conn.execute(f"delete from {OPS_SCHEMA}.{HOLDS_TABLE}")
        if values:
            marks = ", ".join("?" for _ in _COLUMNS)
            duck_conn.executemany(
                f"insert into {OPS_SCHEMA}.{HOLDS_TABLE} "
                f"({', '.join(name for name, _ in _COLUMNS)}) values ({marks})", values,
            )
    except BaseException:
        duck_conn.execute("rollback")
        raise
    duck_conn.execute("commit")
    logger.info("collection holds copied to the warehouse: %d rows", len(values))
    return len(values)


def ensure_store(store_path: Path) -> None:
    """Create the holds table in the store when missing (an export reads it), and add the
    columns a table of an earlier release lacks."""
    with connect(store_path) as conn:
        ensure_schema(conn, HOLDS_DDL)
        present = {row["name"] for row in conn.execute(f"pragma table_info({HOLDS_TABLE})")}
        for name, kind in _ADDED_COLUMNS:
            if name not in present:
                conn.execute(f"alter table {HOLDS_TABLE} add column {name} {kind}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _close_open_holds(conn: sqlite3.Connection, account_key: str, now: dt.datetime,
                      today: dt.date, by: str, reason: str, keep: int | None = None) -> int:
    cursor = conn.execute(
        f"""
        update {HOLDS_TABLE} set released_at = ?, released_on = ?, released_by = ?,
            release_reason = ?
        where account_key = ? and released_at is null and held_until >= ?
          and hold_id <> coalesce(?, -1)
        """,
        (_stamp(now), today.isoformat(), by, reason, account_key, today.isoformat(), keep),
    )
    return cursor.rowcount


def _hold_of(row: sqlite3.Row) -> Hold:
    return Hold(
        hold_id=int(row["hold_id"]), account_key=row["account_key"],
        account_name=row["account_name"],
        held_until=dt.date.fromisoformat(row["held_until"]), reason=row["reason"],
        held_by=row["held_by"], held_at=_moment(row["held_at"]),
        released_at=_moment(row["released_at"]) if row["released_at"] else None,
        released_by=row["released_by"], release_reason=row["release_reason"],
        held_on=_day(row["held_on"]), released_on=_day(row["released_on"]),
    )


def _day(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _warehouse_value(kind: str, value: object) -> object:
    """Store text to warehouse values: dates as dates, times as naive UTC timestamps."""
    if value is None:
        return None
    if kind == "date":
        return dt.date.fromisoformat(str(value))
    if kind == "timestamp":
        return _moment(str(value)).astimezone(dt.UTC).replace(tzinfo=None)
    return value
