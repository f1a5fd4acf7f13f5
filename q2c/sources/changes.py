"""Ingest that reads only the landed files that changed since they were loaded.

Parsing a landed CSV row by row is most of what ingest costs, and most nights most files
are the ones loaded the night before. A table is kept as it is, without reading its file,
when all of these hold:

- its file has the bytes, path and name of the file of the last good load (sha256);
- the table contract (columns, key) and the loader's code are the ones that load used;
- the raw table still holds exactly the rows that load wrote (its content fingerprint).

Anything else loads the table again, as `q2c.sources.landing.load_table` always did; so
does a file that is missing or failed to load. A kept table is reported like a loaded one:
its line in `q2c_ops.ingest_report` says `unchanged` with the counts of its load, and its
quarantined rows are recorded again for this run, so the run report and the invoice holds
that read them see what a reload would have produced.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

import duckdb

from q2c import changes
from q2c.sources import landing
from q2c.sources.landing import (
    QuarantinedRow,
    TableLoad,
    find_table_file,
    load_table,
    record_loads,
    source_folder,
)
from q2c.sources.schema import RawTable, tables_of
from q2c.warehouse import OPS_SCHEMA

log = logging.getLogger(__name__)

SCOPE = "landing"
UNCHANGED = "unchanged"
_LOADED = ("loaded", "loaded_with_warnings")


@cache
def _loader_code() -> str:
    """The loader's own source: a fix to how files are read loads every file again."""
    return changes.file_sha256(Path(landing.__file__))


def file_fingerprint(path: Path, table: RawTable) -> str:
    """What a load of `table` from `path` depends on: the file, the contract, the loader."""
    contract = json.dumps([table.schema, table.name, table.key, table.columns])
    return changes.sha256_text(str(path), changes.file_sha256(path), contract, _loader_code())


def load_changed_source(
    conn: duckdb.DuckDBPyConnection, landing_dir: Path, source: str, run_id: str
) -> list[TableLoad]:
    """Load the tables of `source` whose files changed; keep and report the others.

    The same contract as `q2c.sources.landing.load_source`, which loads every table.
    """
    folder = source_folder(Path(landing_dir), source)
    loads = []
    for table in tables_of(source):
        path = find_table_file(folder, table)
        fingerprint = file_fingerprint(path, table) if path is not None else None
        kept = _unchanged_load(conn, table, path, fingerprint) if fingerprint else None
        if kept is not None:
            loads.append(kept)
            continue
        load = load_table(conn, folder, table)
        if fingerprint is not None and not _still(path, table, fingerprint):
            fingerprint = None  # the file changed while it was read: load it again next run
        _remember(conn, table, load, fingerprint, run_id)
        loads.append(load)

    record_loads(conn, loads, run_id)
    for load in loads:
        log.info("raw_%s.%s: %s, %d rows, %d quarantined %s", source, load.table.name,
                 load.status, load.rows_loaded, load.rows_quarantined, load.message)
    return loads


def _still(path: Path, table: RawTable, fingerprint: str) -> bool:
    try:
        return file_fingerprint(path, table) == fingerprint
    except OSError:
        return False


def _state_name(table: RawTable) -> str:
    return f"{table.source}.{table.name}"


def _unchanged_load(conn: duckdb.DuckDBPyConnection, table: RawTable, path: Path,
                    fingerprint: str) -> TableLoad | None:
    """The last load of `table`, restated for this run, when nothing it read has changed."""
    state = changes.recorded(conn, SCOPE, _state_name(table))
    if state is None or state.fingerprint != fingerprint:
        return None
    details = state.details
    current = changes.relation_fingerprint(conn, table.schema, table.name)
    if current != details.get("table_fingerprint"):
        log.info("raw_%s.%s: the table changed since run %s loaded it; loading it again",
                 table.source, table.name, state.run_id)
        return None
    message = f"{path} is the file loaded in run {state.run_id}; that load is kept"
    if details.get("message"):
        message += f" ({details['message']})"
    return TableLoad(
        table=table, file=path, rows_read=details["rows_read"],
        rows_loaded=details["rows_loaded"], missing_columns=details["missing_columns"],
        extra_columns=details["extra_columns"], quarantined=_quarantined_rows(conn, table),
        status=UNCHANGED, message=message,
    )


def _quarantined_rows(conn: duckdb.DuckDBPyConnection, table: RawTable) -> list[QuarantinedRow]:
    """The rows the kept load quarantined, to record again for this run."""
    rows = conn.execute(
        f"select row_number, record_id, field, reason, raw_record from {OPS_SCHEMA}.quarantine "
        "where stage = 'ingest' and source = ? and table_name = ? order by row_number",
        [table.source, table.name],
    ).fetchall()
    return [QuarantinedRow(number, record_id, field, reason, json.loads(raw or "{}"))
            for number, record_id, field, reason, raw in rows]


def _remember(conn: duckdb.DuckDBPyConnection, table: RawTable, load: TableLoad,
              fingerprint: str | None, run_id: str) -> None:
    """Record a good load with its inputs; forget a failed one, so it is tried again."""
    name = _state_name(table)
    if fingerprint is None or load.status not in _LOADED:
        changes.forget(conn, SCOPE, name)
        return
    changes.record(conn, SCOPE, name, fingerprint, run_id, {
        "file": str(load.file), "rows_read": load.rows_read, "rows_loaded": load.rows_loaded,
        "missing_columns": load.missing_columns, "extra_columns": load.extra_columns,
        "message": load.message,
        "table_fingerprint": changes.relation_fingerprint(conn, table.schema, table.name),
    })
