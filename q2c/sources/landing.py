"""Load landed CSV exports into the warehouse's raw schemas, in Fivetran's table shape.

A landing folder holds one folder per source (`salesforce/`, `quickbooks/`), one CSV file per
table. Rows are identified by their line in the file (the header is line 1), so a person can
open the file at the line a report names. Raw tables keep every value as text, exactly as
landed; typing happens in dbt staging.
What cannot be used is never silently dropped: a row without its key, a row with the wrong
number of fields, or an older duplicate of a key goes to `q2c_ops.quarantine` with the file,
row number, field and reason, and every table gets a line in `q2c_ops.ingest_report`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from q2c.sources.schema import RawTable, tables_of
from q2c.warehouse import OPS_SCHEMA

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = ("_q2c_source_file", "_q2c_source_row", "_q2c_loaded_at")
_RECENCY_COLUMNS = ("_fivetran_synced", "updated_at", "last_modified_date")


class LandingFileError(ValueError):
    """A landed file that cannot be read at all (encoding, header)."""


@dataclass
class QuarantinedRow:
    """A row kept out of the raw table. `row_number` is its line in the file (header is 1)."""

    row_number: int
    record_id: str | None
    field: str | None
    reason: str
    raw_record: dict


@dataclass
class TableLoad:
    """What happened to one raw table in one ingest run."""

    table: RawTable
    file: Path | None
    rows_read: int = 0
    rows_loaded: int = 0
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: int = 0
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    status: str = "loaded"
    message: str = ""

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantined)


def source_folder(landing_dir: Path, source: str) -> Path:
    """The folder holding a source's files: `<landing>/<source>` or `<landing>/fivetran-<source>`.

    The second form lets q2c read a folder of Fivetran-named exports (as in the shared sample
    data) without renaming anything.
    """
    for candidate in (landing_dir / source, landing_dir / f"fivetran-{source}"):
        if candidate.is_dir():
            return candidate
    return landing_dir / source


def find_table_file(folder: Path, table: RawTable) -> Path | None:
    for name in table.file_names():
        if (folder / name).is_file():
            return folder / name
    return None


# A single value may be long (a case description), but not unbounded.
FIELD_LIMIT = 16 * 2**20
csv.field_size_limit(FIELD_LIMIT)
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?)?"
)


def _read_text(path: Path) -> str:
    """The file as text; bytes that are not UTF-8 are kept escaped so their row is found."""
    data = path.read_bytes()
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        raise LandingFileError(f"{path}: the file is UTF-16; re-export the table as UTF-8 CSV")
    return data.decode("utf-8-sig", errors="surrogateescape")


def _undecodable(values: list[str]) -> str | None:
    """The first byte that was not valid UTF-8, as `0xE9`, or None."""
    for value in values:
        for char in value:
            if "\udc80" <= char <= "\udcff":
                return f"0x{ord(char) - 0xDC00:02X}"
    return None


def row_recency(record: dict) -> tuple:
    """When a row version was synced, parsed: sources write `9:17:27` as well as `09:17:27`."""
    for column in _RECENCY_COLUMNS:
        match = _TIMESTAMP.match((record.get(column) or "").strip())
        if match:
            parts = [int(p) if p else 0 for p in match.groups()[:6]]
            fraction = float(f"0.{match.group(7)}") if match.group(7) else 0.0
            return (*parts, fraction)
    return ()


def normalize_column_name(name: str) -> str:
    """`Customer Memo ` -> `customer_memo`: headers as loaders other than Fivetran write them."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def quote_identifier(name: str) -> str:
    """A name as a SQL identifier: in double quotes, its own double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


class CsvRecords:
    """A strict CSV reader that remembers the line where the record being read starts, so a
    broken record is reported where a person has to look, not where the reader gave up."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        self.started = 1

    def __iter__(self) -> CsvRecords:
        return self

    def __next__(self) -> list[str]:
        self.started = self.reader.line_num + 1
        return next(self.reader)

    @property
    def line_num(self) -> int:
        """The last line of the record just read."""
        return self.reader.line_num

    def problem(self, exc: csv.Error) -> str:
        """Why the file is not valid CSV, told apart by the quotes left after the last good
        record: an odd count means one never closes (the rest of the file became one value);
        an even count with a too-long value means the value really is that long."""
        rest = io.StringIO(self.text, newline="")
        for _ in range(self.started - 1):
            rest.readline()
        unbalanced = rest.read().count('"') % 2 == 1
        line = self.started
        if unbalanced:
            return (f"a quote opened in the record starting on line {line} is never closed, "
                    f"so the rest of the file reads as one value ({exc}); a quote is probably "
                    "unbalanced. Fix or re-export the file")
        if "field larger than field limit" in str(exc):
            return (f"the record starting on line {line} has a value longer than "
                    f"{FIELD_LIMIT // 2**20} MiB, the most q2c reads in one field; remove or "
                    "shorten that value (often an attachment or encoded file exported by "
                    "mistake) and re-export the file")
        return f"line {line} is not valid CSV ({exc}). Fix or re-export the file"


def unnamed_report(path: object, header: list[str],
                   rows: list[tuple[int, list[str]]]) -> tuple[list[str], list, str]:
    """Header and rows without the empty unnamed columns at the end of the header (a trailing
    comma, as spreadsheets write it), and a note saying so. A column without a name that
    holds a value, or that stands between named ones, cannot be placed: LandingFileError
    naming its position (from 1) and, for a value, the line."""
    positions = [i for i, name in enumerate(header) if not name]
    if not positions:
        return header, rows, ""
    for line, values in rows:
        for i in positions:
            if i < len(values) and values[i].strip():
                raise LandingFileError(
                    f"{path}: column {i + 1} has no name in the header but holds a value on "
                    f"line {line}; name that column in the header (or remove it) and "
                    "re-export"
                )
    named = len(header) - len(positions)
    if positions != list(range(named, len(header))):
        raise LandingFileError(
            f"{path}: column {positions[0] + 1} has no name in the header; name it (or "
            "remove the column) and re-export"
        )
    # Only empty values stand past the named columns, so a row may end there or after them.
    rows = [(line, values[:named] if named <= len(values) <= len(header) else values)
            for line, values in rows]
    numbers = ", ".join(str(p + 1) for p in positions)
    return header[:named], rows, (
        f"column(s) {numbers} had no name and no values and were left out")


def parse_table_file(path: Path, table: RawTable) -> tuple[list[str], list[dict], TableLoad]:
    """Read one CSV into header and good records, collecting the rows that cannot be used."""
    load = TableLoad(table=table, file=path)
    records = CsvRecords(_read_text(path))
    try:
        header = [normalize_column_name(name) for name in next(records, [])]
        rows = [(records.line_num, values) for values in records]
    except csv.Error as exc:
        raise LandingFileError(
            f"{path}: {records.problem(exc)}; no row of it was loaded."
        ) from exc
    header, rows, load.message = unnamed_report(path, header, rows)
    return _parse_records(path, table, rows, header, load)


def _key_of(table: RawTable, header: list[str], values: list[str]) -> str | None:
    """The key a broken row most likely had, so what depends on it can be held back."""
    parts = []
    for key in table.key:
        position = header.index(key)
        if position >= len(values) or not values[position].strip():
            return None
        parts.append(values[position].strip())
    return "|".join(parts)


def _parse_records(path, table, rows, header, load):
    if not header or not any(header):
        raise LandingFileError(f"{path}: the file has no header row")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise LandingFileError(f"{path}: columns {duplicated} appear twice in the header")
    missing_keys = [key for key in table.key if key not in header]
    if missing_keys:
        raise LandingFileError(
            f"{path}: key column(s) {missing_keys} missing from the header; "
            f"{table.source}.{table.name} cannot be loaded without them"
        )

    kept: dict[tuple, dict] = {}
    for row_number, values in rows:
        if not any(value.strip() for value in values):
            continue
        load.rows_read += 1
        if len(values) != len(header):
            load.quarantined.append(QuarantinedRow(
                row_number, _key_of(table, header, values), None,
                f"row has {len(values)} fields but the header has {len(header)}",
                {"values": values},
            ))
            continue
        record = {
            name: (value if value != "" else None)
            for name, value in zip(header, values, strict=True)
        }
        bad_byte = _undecodable(values)
        if bad_byte:
            load.quarantined.append(QuarantinedRow(
                row_number, _key_of(table, header, values), None,
                f"byte {bad_byte} is not valid UTF-8; re-export the table as UTF-8",
                {k: v.encode("utf-8", "surrogateescape").decode("latin-1") if v else v
                 for k, v in record.items()},
            ))
            continue
        for key in table.key:
            record[key] = record[key].strip() if record[key] else record[key]
        empty_key = next((key for key in table.key if not (record[key] or "").strip()), None)
        if empty_key:
            load.quarantined.append(QuarantinedRow(
                row_number, None, empty_key, f"key column `{empty_key}` is empty", record
            ))
            continue
        record["_q2c_source_row"] = row_number
        key = tuple(record[k] for k in table.key)
        if key in kept:
            older, newer = sorted((kept[key], record), key=row_recency)
            load.quarantined.append(QuarantinedRow(
                older["_q2c_source_row"], "|".join(key), ",".join(table.key),
                f"duplicate key; the version on line {newer['_q2c_source_row']} was kept",
                {k: v for k, v in older.items() if k != "_q2c_source_row"},
            ))
            kept[key] = newer
            continue
        kept[key] = record

    load.missing_columns = [c for c in table.columns if c not in header]
    load.extra_columns = len([c for c in header if c not in table.columns])
    return header, list(kept.values()), load


def _frame(
    table: RawTable, header: list[str], records: list[dict], source_file: str
) -> pd.DataFrame:
    columns = list(header) + [c for c in table.columns if c not in header]
    frame = pd.DataFrame.from_records(records, columns=columns + ["_q2c_source_row"])
    frame = frame.astype({c: "string" for c in columns})
    frame["_q2c_source_file"] = source_file
    frame["_q2c_loaded_at"] = pd.Timestamp(dt.datetime.now(dt.UTC).replace(tzinfo=None))
    return frame


def _write_raw_table(
    conn: duckdb.DuckDBPyConnection, table: RawTable, frame: pd.DataFrame
) -> None:
    schema = quote_identifier(table.schema)
    conn.execute(f"create schema if not exists {schema}")
    conn.register("_q2c_landing_frame", frame)
    try:
        value_columns = [c for c in frame.columns if c not in LINEAGE_COLUMNS]
        select = ", ".join(
            f"cast({quote_identifier(c)} as varchar) as {quote_identifier(c)}"
            for c in value_columns
        )
        conn.execute(
            f"create or replace table {schema}.{quote_identifier(table.name)} as "
            f"select {select}, "
            "cast(_q2c_source_file as varchar) as _q2c_source_file, "
            "cast(_q2c_source_row as integer) as _q2c_source_row, "
            "cast(_q2c_loaded_at as timestamp) as _q2c_loaded_at "
            "from _q2c_landing_frame"
        )
    finally:
        conn.unregister("_q2c_landing_frame")


def _table_exists(conn: duckdb.DuckDBPyConnection, table: RawTable) -> bool:
    """A file that cannot be read leaves the table of the last good load in place."""
    return conn.execute(
        "select count(*) from information_schema.tables where table_schema = ? "
        "and table_name = ?", [table.schema, table.name],
    ).fetchone()[0] > 0


def blocking_failures(loads: Iterable[TableLoad]) -> list[str]:
    """Why the night must stop: a required table whose file is missing or unreadable."""
    return [
        f"raw_{load.table.source}.{load.table.name}: {load.message}"
        for load in loads
        if load.table.required and load.status in ("failed", "missing_file")
    ]


def load_table(conn: duckdb.DuckDBPyConnection, folder: Path, table: RawTable) -> TableLoad:
    """Load one raw table from its landed file; a missing file lands an empty table."""
    path = find_table_file(folder, table)
    if path is None:
        keep = table.required and _table_exists(conn, table)
        load = TableLoad(table=table, file=None, status="missing_file",
                         missing_columns=list(table.columns),
                         message=f"no file {' or '.join(table.file_names())} in {folder}; "
                                 + ("the last good load is kept" if keep
                                    else "the table is empty this run"))
        if not keep:
            _write_raw_table(conn, table, _frame(table, [], [], ""))
        return load

    try:
        header, records, load = parse_table_file(path, table)
    except LandingFileError as exc:
        load = TableLoad(table=table, file=path, status="failed", message=str(exc))
        if not _table_exists(conn, table):
            _write_raw_table(conn, table, _frame(table, [], [], str(path)))
        return load

    try:
        _write_raw_table(conn, table, _frame(table, header, records, str(path)))
    except duckdb.Error as exc:
        # Whatever the warehouse refuses in a landed file, the report names the file to fix
        # and the table of the last good load stays, so one bad file cannot stop the night.
        message = (f"{path}: could not be loaded into raw_{table.source}.{table.name} "
                   f"({type(exc).__name__}: {exc}); fix or remove that file (each row "
                   "names the drop it came from in _q2c_drop_file, if any) and ingest again")
        log.error("raw_%s.%s: %s", table.source, table.name, message)
        if not _table_exists(conn, table):
            _write_raw_table(conn, table, _frame(table, [], [], str(path)))
        return TableLoad(table=table, file=path, status="failed", message=message)
    load.rows_loaded = len(records)
    if load.quarantined or load.missing_columns or load.message:
        load.status = "loaded_with_warnings"
    return load


def record_loads(conn: duckdb.DuckDBPyConnection, loads: Iterable[TableLoad], run_id: str) -> None:
    """Write the ingest report and the quarantined rows of this run."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for load in loads:
        table = load.table
        conn.execute(
            f"delete from {OPS_SCHEMA}.quarantine where stage = 'ingest' "
            "and source = ? and table_name = ?",
            [table.source, table.name],
        )
        conn.execute(
            f"insert into {OPS_SCHEMA}.ingest_report values (?,?,?,?,?,?,?,?,?,?,?,?)",
            [run_id, table.source, table.name, str(load.file or ""), load.rows_read,
             load.rows_loaded, load.rows_quarantined, ",".join(load.missing_columns),
             load.extra_columns, load.status, load.message, now],
        )
        rows = [
            [run_id, "ingest", table.source, table.name, str(load.file), row.row_number,
             row.record_id, row.field, row.reason, json.dumps(row.raw_record, default=str),
             now] for row in load.quarantined
        ]
        if rows:
            conn.executemany(
                f"insert into {OPS_SCHEMA}.quarantine values (?,?,?,?,?,?,?,?,?,?,?)", rows
            )


def load_source(
    conn: duckdb.DuckDBPyConnection, landing_dir: Path, source: str, run_id: str
) -> list[TableLoad]:
    """Load every raw table of one source from the landing folder and report what happened."""
    folder = source_folder(Path(landing_dir), source)
    loads = [load_table(conn, folder, t) for t in tables_of(source)]
    record_loads(conn, loads, run_id)
    for load in loads:
        log.info(
            "raw_%s.%s: %d rows loaded, %d quarantined, status %s %s",
            source, load.table.name, load.rows_loaded, load.rows_quarantined, load.status,
            load.message,
        )
    return loads
