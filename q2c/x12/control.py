"""X12 control numbers, kept per trading partner in the operational store.

A partner's translator rejects an interchange whose ISA13 it has seen before (a duplicate
looks like a resend), and it matches every 997 back to our invoice through the group and
transaction set numbers (GS06, ST02). So the three numbers are allocated per partner from
counters in the ops SQLite store, never in memory: an allocation is one BEGIN IMMEDIATE
transaction that reads the counters, records the issued numbers and advances the counters,
so two runs in two processes that allocate at the same time each get different numbers.

An allocation is tied to a document key (the outbox idempotency key of the delivery).
Asking again for the same key returns the numbers already issued, so re-rendering an
invoice after a crash repeats its interchange instead of spending new numbers on it.

Gaps: a failed allocation rolls back with its counter update, so the counters themselves
never skip; but an interchange allocated and then never sent leaves a number the partner
does not see. Partners check for duplicates, not gaps.

Wrap-around: ISA13, GS06 and ST02 hold nine digits. After 999999999 a counter starts again
at 1; at one interchange a minute that is nineteen centuries away, and `lookup` returns
every issue of a number, newest first, should it ever happen.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from q2c.opsdb import connect, ensure_schema, transaction
from q2c.x12.profiles import TradingPartner

log = logging.getLogger(__name__)

MAX_CONTROL = 999_999_999

DDL = """
create table if not exists x12_control_counters (
    partner text primary key,
    next_isa integer not null,
    next_gs integer not null,
    next_st integer not null
);
create table if not exists x12_issued_controls (
    id integer primary key autoincrement,
    partner text not null,
    isa integer not null,
    gs integer not null,
    st integer not null,
    document_key text not null,
    invoice_number text not null,
    issued_at text not null,
    unique (partner, document_key)
);
create index if not exists x12_issued_controls_by_group
    on x12_issued_controls (partner, gs, st);
"""


@dataclass(frozen=True)
class Controls:
    """ISA13, GS06 and ST02 of one interchange."""

    isa: int
    gs: int
    st: int


@dataclass(frozen=True)
class IssuedControl:
    """One allocation as recorded: which numbers went to which document."""

    partner: str
    isa: int
    gs: int
    st: int
    document_key: str
    invoice_number: str
    issued_at: dt.datetime


class ControlNumbers:
    """Allocates and looks up control numbers in the ops store at `store_path`."""

    def __init__(self, store_path: Path):
        self.store_path = Path(store_path)
        with connect(self.store_path) as conn:
            ensure_schema(conn, DDL)

    def allocate(
        self, partner: TradingPartner, document_key: str, invoice_number: str
    ) -> Controls:
        """The control numbers of `document_key` for `partner`: new ones the first time,
        the same ones every later time.

        Raises:
            ValueError: The key was issued before for another invoice number; a document
                key names one document, so this is a caller error to fix, not to retry.
        """
        if not document_key:
            raise ValueError(f"invoice {invoice_number}: an X12 allocation needs a document key")
        with connect(self.store_path) as conn, transaction(conn):
            row = conn.execute(
                "select isa, gs, st, invoice_number from x12_issued_controls "
                "where partner = ? and document_key = ?",
                (partner.name, document_key),
            ).fetchone()
            if row is not None:
                if row["invoice_number"] != invoice_number:
                    raise ValueError(
                        f"document key {document_key!r} was issued X12 control numbers for "
                        f"invoice {row['invoice_number']}, not {invoice_number}; give each "
                        "document its own key"
                    )
                return Controls(row["isa"], row["gs"], row["st"])
            controls = _take(conn, partner.name)
            conn.execute(
                "insert into x12_issued_controls "
                "(partner, isa, gs, st, document_key, invoice_number, issued_at) "
                "values (?, ?, ?, ?, ?, ?, ?)",
                (partner.name, controls.isa, controls.gs, controls.st, document_key,
                 invoice_number, dt.datetime.now(dt.UTC).isoformat()),
            )
        log.info("x12 partner %s invoice %s: interchange %09d, group %d, set %04d",
                 partner.name, invoice_number, controls.isa, controls.gs, controls.st)
        return controls

    def lookup(
        self, partner_name: str, gs_control: int, st_control: int | None = None
    ) -> list[IssuedControl]:
        """Which documents went out to `partner_name` under group `gs_control` (and set
        `st_control`), newest first: how a 997 is matched back to its invoice."""
        sql = (
            "select partner, isa, gs, st, document_key, invoice_number, issued_at "
            "from x12_issued_controls where partner = ? and gs = ?"
        )
        params: list[object] = [partner_name, gs_control]
        if st_control is not None:
            sql += " and st = ?"
            params.append(st_control)
        with connect(self.store_path) as conn:
            rows = conn.execute(sql + " order by id desc", params).fetchall()
        return [
            IssuedControl(row["partner"], row["isa"], row["gs"], row["st"],
                          row["document_key"], row["invoice_number"],
                          dt.datetime.fromisoformat(row["issued_at"]))
            for row in rows
        ]

    def start_at(self, partner_name: str, controls: Controls) -> None:
        """Continue a partner's numbering from `controls` (the next numbers to issue), for
        example after moving from another translator. Numbers only move forward.

        Raises:
            ValueError: A number below one already reached, or outside 1..999999999.
        """
        for value in (controls.isa, controls.gs, controls.st):
            if not 1 <= value <= MAX_CONTROL:
                raise ValueError(f"partner {partner_name}: control number {value} is outside "
                                 f"1..{MAX_CONTROL}")
        with connect(self.store_path) as conn, transaction(conn):
            current = _counters(conn, partner_name)
            if any(new < old for new, old in zip(
                (controls.isa, controls.gs, controls.st), current, strict=True
            )):
                raise ValueError(
                    f"partner {partner_name}: the next control numbers are already "
                    f"{current}; moving back to {controls} would reuse numbers"
                )
            conn.execute(
                "update x12_control_counters set next_isa = ?, next_gs = ?, next_st = ? "
                "where partner = ?",
                (controls.isa, controls.gs, controls.st, partner_name),
            )


def _counters(conn: sqlite3.Connection, partner_name: str) -> tuple[int, int, int]:
    conn.execute(
        "insert or ignore into x12_control_counters (partner, next_isa, next_gs, next_st) "
        "values (?, 1, 1, 1)",
        (partner_name,),
    )
    row = conn.execute(
        "select next_isa, next_gs, next_st from x12_control_counters where partner = ?",
        (partner_name,),
    ).fetchone()
    return row["next_isa"], row["next_gs"], row["next_st"]


def _take(conn: sqlite3.Connection, partner_name: str) -> Controls:
    isa, gs, st = _counters(conn, partner_name)
    conn.execute(
        "update x12_control_counters set next_isa = ?, next_gs = ?, next_st = ? "
        "where partner = ?",
        (_next(isa), _next(gs), _next(st), partner_name),
    )
    return Controls(isa, gs, st)


def _next(value: int) -> int:
    return 1 if value >= MAX_CONTROL else value + 1
