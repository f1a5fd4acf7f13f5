"""What each step last built from, so a rerun with the same inputs can skip the work.

The nightly job reruns every step, but most nights most inputs are what they were: the
same landed files, the same raw tables, the same marts. A step that can tell keeps a
fingerprint of its inputs in `q2c_ops.change_state` when it succeeds and compares the next
run's fingerprint with it. Fingerprints are of content, never of times: a landed file by
its bytes, a warehouse relation by its rows, so a file touched but not changed, or a table
reloaded with the same rows, counts as unchanged, and anything else as changed.

A fingerprint is recorded only after the work it stands for has succeeded, so a failed or
interrupted run leaves the last good one in place and the next run does the work again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from q2c.warehouse import OPS_SCHEMA

STATE_TABLE = f"{OPS_SCHEMA}.change_state"
# When q2c copied a row into the warehouse (loaded at ingest, exported from the review
# store) says nothing about what the row holds; no model reads these.
LOAD_TIME_COLUMNS = ("_q2c_loaded_at", "exported_at")

_STATE_DDL = f"""
create schema if not exists {OPS_SCHEMA};
create table if not exists {STATE_TABLE} (
    scope varchar, name varchar, fingerprint varchar, details varchar, run_id varchar,
    recorded_at timestamp, primary key (scope, name)
);
"""
_QUALIFIED_NAME = re.compile(r'"?([A-Za-z_][\w$]*)"?\s*\.\s*"?([A-Za-z_][\w$]*)"?')


@dataclass(frozen=True)
class RecordedState:
    """The inputs a step last succeeded with: their fingerprint, the run, and its notes."""

    fingerprint: str
    details: dict
    run_id: str
    recorded_at: dt.datetime


def sha256_text(*parts: str | bytes) -> str:
    """One digest of several parts, each length-prefixed so no two splits collide."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_sha256(paths: Iterable[Path], root: Path) -> str:
    """One digest of many files, by their path under `root` and their bytes."""
    parts: list[str | bytes] = []
    for path in sorted(Path(p) for p in paths):
        parts += [str(path.relative_to(root)), path.read_bytes()]
    return sha256_text(*parts)


def ensure_state_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(_STATE_DDL)


def recorded(conn: duckdb.DuckDBPyConnection, scope: str, name: str) -> RecordedState | None:
    """The state last recorded for `scope`/`name`, or None (never recorded, or no table)."""
    try:
        row = conn.execute(
            f"select fingerprint, details, run_id, recorded_at from {STATE_TABLE} "
            "where scope = ? and name = ?", [scope, name],
        ).fetchone()
    except duckdb.CatalogException:
        return None
    if row is None:
        return None
    return RecordedState(row[0], json.loads(row[1] or "{}"), row[2], row[3])


def record(conn: duckdb.DuckDBPyConnection, scope: str, name: str, fingerprint: str,
           run_id: str, details: dict | None = None) -> None:
    """Remember that `scope`/`name` succeeded in `run_id` with inputs `fingerprint`."""
    ensure_state_table(conn)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    conn.execute(
        f"insert or replace into {STATE_TABLE} values (?, ?, ?, ?, ?, ?)",
        [scope, name, fingerprint, json.dumps(details or {}, sort_keys=True, default=str),
         run_id, now],
    )


def forget(conn: duckdb.DuckDBPyConnection, scope: str, name: str) -> None:
    """Drop the recorded state, so the next run does the work whatever it finds."""
    ensure_state_table(conn)
    conn.execute(f"delete from {STATE_TABLE} where scope = ? and name = ?", [scope, name])


def existing_relations(conn: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """Every (schema, name) of a table or view in the warehouse, lower-cased."""
    rows = conn.execute(
        "select lower(table_schema), lower(table_name) from information_schema.tables"
    ).fetchall()
    return {(schema, name) for schema, name in rows}


def relation_fingerprint(conn: duckdb.DuckDBPyConnection, schema: str, name: str) -> str:
    """A digest of a relation's rows and columns, in any row order; 'missing' when absent.

    Rows are hashed by DuckDB and summed, so the digest does not depend on the order rows
    come back in but does on how often each occurs. Load-time columns are left out: a
    table reloaded from the same file, or exported again, holds the same data.
    """
    columns = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where lower(table_schema) = lower(?) and lower(table_name) = lower(?) "
        "order by ordinal_position", [schema, name],
    ).fetchall()
    if not columns:
        return "missing"
    kept = [column for column, _ in columns if column not in LOAD_TIME_COLUMNS]
    select = ", ".join(_quote(column) for column in kept) or "1"
    count, total = conn.execute(
        f"select count(*), coalesce(sum(hash(_q2c_row)::hugeint), 0) "
        f"from (select {select} from {_quote(schema)}.{_quote(name)}) as _q2c_row"
    ).fetchone()
    shape = ",".join(f"{column}:{kind}" for column, kind in columns
                     if column not in LOAD_TIME_COLUMNS)
    return sha256_text(shape, str(count), str(total))


def relations_read_by(sql: str, known: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The warehouse relations a query names as `schema.name`, among those that exist.

    A name in the query that is not a relation (a CTE's column, `alias.column`) is left
    out by matching against `known`; a relation named without its schema is not found, so
    suite queries name their tables in full.
    """
    found = {(schema.lower(), name.lower()) for schema, name in _QUALIFIED_NAME.findall(sql)}
    return sorted(found & known)


def relations_fingerprint(conn: duckdb.DuckDBPyConnection,
                          relations: Iterable[tuple[str, str]]) -> dict[str, str]:
    """`schema.name` -> fingerprint, for each relation."""
    return {f"{schema}.{name}": relation_fingerprint(conn, schema, name)
            for schema, name in relations}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
