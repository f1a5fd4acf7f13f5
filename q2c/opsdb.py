"""The operational store: the outbox, delivery events and review decisions.

These records change while people and processes work at the same time (a nightly run
delivering, a second run started by mistake, someone approving an invoice with `q2c
review`), so they live in a transactional store that several processes can write, not in
the DuckDB warehouse, which admits one writing process. The embedded default is one SQLite
file in WAL mode under Q2C_HOME; the delivery step copies the records into the warehouse
(`q2c_ops`) after each run, where dbt builds `fct_deliveries` and the KPIs from them.

Modules that keep records here create their own tables with `ensure_schema`; the DDL must
be idempotent (`create table if not exists`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000


def open_store(path: Path) -> sqlite3.Connection:
    """Open the store in autocommit mode; use `transaction()` for atomic steps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("pragma journal_mode=wal")
    conn.execute(f"pragma busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("pragma foreign_keys=on")
    return conn


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_store(path)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken with BEGIN IMMEDIATE.

    IMMEDIATE takes the write lock at the start, so two processes claiming the same outbox
    row cannot both read it as free: the second waits (up to the busy timeout) and then
    sees the first one's claim.
    """
    conn.execute("begin immediate")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    conn.execute("commit")


def ensure_schema(conn: sqlite3.Connection, ddl: str) -> None:
    conn.executescript(ddl)
