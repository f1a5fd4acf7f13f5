"""File drops: CSV or JSON exports left in a folder or an S3 prefix, placed for ingest.

A team whose system cannot be pulled exports tables as files: `<drops>/<source>/<table>.csv`
(or `.json`, a JSON array of objects, or `.jsonl`/`.ndjson`, one object per line). The name
is the table's exactly (or a name `RawTable.file_names()` gives, such as Fivetran's
`sf_account_data.csv`), optionally followed by a date or sequence number that starts with a
digit (`invoice_2026-01-31.csv`, `invoice-2.csv`). Nothing else matches: table names share
prefixes (`invoice`, `invoice_line_item`), so `invoice_line_items.csv` is quarantined rather
than read as invoices. Each new file is:

- read by header name, never by position: a reordered header, a new column or a missing
  one cannot shift a value into the wrong column;
- checked against the raw table (`q2c.sources.schema`): a column q2c does not read is kept
  and reported, a column q2c reads that the file lacks is reported and lands empty (a
  renamed column shows as one of each), and a file without a key column is refused;
- upserted by key into `<landing>/<source>/<table>.csv`, the file the ingest step loads.

Each file is processed once: the ops store keeps a manifest keyed by its path and identity
(the S3 ETag; in a folder, size, modification time and a hash of the content, so a file
replaced with one of the same size and time is still seen), so a file replaced under the
same name is a new drop. A refused file moves to `<drops>/_quarantine/<source>/` beside a
`.reason.txt` naming the file and the problem; after a fix it can be dropped again. Rows of
an accepted file that cannot be used (no key value, wrong number of fields, an older
version of a key repeated in the file) are left out, counted, and written to the quarantine
folder with their line number and reason. A file that cannot be read for another reason (an
S3 object gone between listing and reading) is reported and tried again on the next run;
it never stops the other files.

Files still being written should be uploaded under a temporary name (starting with `.` or
ending in `.tmp` or `.part`) and renamed when complete; such names are not read.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from q2c.opsdb import connect, ensure_schema, transaction
from q2c.sources.connectors.landing_writer import LandingWriter, TableBatch, table_shape
from q2c.sources.landing import (
    CsvRecords,
    LandingFileError,
    normalize_column_name,
    row_recency,
    unnamed_report,
)
from q2c.sources.schema import SOURCES, RawTable, tables_of

log = logging.getLogger(__name__)

QUARANTINE = "_quarantine"
READABLE = (".csv", ".json", ".jsonl", ".ndjson")
IN_PROGRESS = (".tmp", ".part", ".partial")
DROP_FILE_COLUMN = "_q2c_drop_file"

MANIFEST_DDL = """
create table if not exists file_drop (
    location text not null,
    path text not null,
    identity text not null,
    status text not null,
    source text,
    table_name text,
    header text,
    rows integer not null default 0,
    message text not null default '',
    batch_id integer,
    processed_at text not null,
    primary key (location, path, identity)
);
create table if not exists file_drop_batch (
    batch_id integer primary key autoincrement,
    location text not null,
    run_key text not null,
    sources text not null,
    created_at text not null
);
"""


class DropRefused(ValueError):
    """A dropped file that cannot be placed; the message names the file and the problem."""


@dataclass(frozen=True)
class DropFile:
    """One file in the drop location: its path there (`<source>/<name>`) and identity."""

    path: str
    identity: str
    size: int = 0

    @property
    def key(self) -> str:
        return f"{self.path}@{self.identity}"


@dataclass
class DropResult:
    """What happened to one dropped file."""

    file: DropFile
    status: str
    source: str | None = None
    table: str | None = None
    rows: int = 0
    new_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    reordered: bool = False
    rejected_rows: int = 0
    duplicate_keys: int = 0
    header: list[str] = field(default_factory=list)
    message: str = ""
    quarantined_to: str | None = None


class DropStore(Protocol):
    """Where drops arrive: list them, read one, move one to quarantine with a reason."""

    location: str

    def files(self) -> list[DropFile]: ...

    def read(self, path: str) -> bytes: ...

    def quarantine(self, path: str, reason: str) -> str: ...

    def put_rejected(self, path: str, data: bytes) -> str: ...


def _visible(relative: str) -> bool:
    """False for the quarantine and for files still being written (`.name`, `*.tmp`,
    `*.part`, `*.partial`)."""
    parts = relative.split("/")
    if parts[0] == QUARANTINE:
        return False
    name = parts[-1]
    return not name.startswith(".") and not name.lower().endswith(IN_PROGRESS)


# Content hashes by (path, size, mtime, ctime, inode): the change time moves with every write
# and cannot be set back, so a cached hash is never one of older content.
_HASHES: dict[tuple, str] = {}


def _content_hash(path: Path, stat: os.stat_result) -> str:
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(2**20), b""):
                digest.update(chunk)
        if len(_HASHES) > 10_000:
            _HASHES.clear()
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


class FolderDrops:
    """Drops in a local folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.location = str(self.folder)

    def files(self) -> list[DropFile]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.rglob("*")):
            relative = path.relative_to(self.folder).as_posix()
            if not (path.is_file() and _visible(relative)):
                continue
            try:
                stat = path.stat()
                identity = (f"{stat.st_size}:{stat.st_mtime_ns}:"
                            f"{_content_hash(path, stat)[:32]}")
            except OSError as exc:
                # Renamed or removed while listed: seen again on the next run, if still there.
                log.warning("file drop %s could not be read while listing (%s); skipped "
                            "this time", relative, exc)
                continue
            found.append(DropFile(relative, identity, stat.st_size))
        return found

    def read(self, path: str) -> bytes:
        return (self.folder / path).read_bytes()

    def quarantine(self, path: str, reason: str) -> str:
        target = _free_name(self.folder / QUARANTINE / path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.folder / path), target)
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
        return str(target)

    def put_rejected(self, path: str, data: bytes) -> str:
        target = _free_name(self.folder / QUARANTINE / f"{path}.rejected-rows.csv")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return str(target)


def _free_name(target: Path) -> Path:
    if not target.exists():
        return target
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    return target.with_name(f"{stamp}-{target.name}")


class S3Drops:
    """Drops under `s3://bucket/prefix`; identity is the object's ETag.

    A drop's path is its key after the prefix exactly as stored: S3 keys are not paths, and
    `a//b.csv` or `a/./b.csv` are objects of their own, so the key is never normalized (that
    would read or move another object). `table_for` refuses such keys.
    """

    def __init__(self, url: str, client: Any) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.location = url
        self.client = client

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def files(self) -> list[DropFile]:
        found = []
        start = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start
        ):
            for item in page.get("Contents", []):
                relative = item["Key"][len(start):]
                if item["Key"].endswith("/") or not _visible(relative):
                    continue
                found.append(DropFile(relative, item["ETag"].strip('"'), item["Size"]))
        return sorted(found, key=lambda f: f.path)

    def read(self, path: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()

    def _free_key(self, relative: str) -> str:
        """A quarantine key for `relative` with no empty or dot segment, not yet taken."""
        clean = "/".join(p if p not in ("", ".", "..") else "_" for p in relative.split("/"))
        target = self._key(f"{QUARANTINE}/{clean}")
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=target, MaxKeys=1)
        if any(item["Key"] == target for item in listed.get("Contents", [])):
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
            head, _, name = target.rpartition("/")
            target = f"{head}/{stamp}-{name}" if head else f"{stamp}-{name}"
        return target

    def quarantine(self, path: str, reason: str) -> str:
        target = self._free_key(path)
        self.client.copy_object(Bucket=self.bucket, Key=target,
                                CopySource={"Bucket": self.bucket, "Key": self._key(path)})
        self.client.put_object(Bucket=self.bucket, Key=f"{target}.reason.txt",
                               Body=(reason + "\n").encode())
        self.client.delete_object(Bucket=self.bucket, Key=self._key(path))
        return f"s3://{self.bucket}/{target}"

    def put_rejected(self, path: str, data: bytes) -> str:
        target = self._free_key(f"{path}.rejected-rows.csv")
        self.client.put_object(Bucket=self.bucket, Key=target, Body=data)
        return f"s3://{self.bucket}/{target}"


def drop_location(settings: Any, env: Mapping[str, str] | None = None) -> str:
    """Where drops arrive: `Q2C_FILE_DROPS` (a folder or s3://bucket/prefix), else
    `<home>/drops`."""
    env = os.environ if env is None else env
    return (env.get("Q2C_FILE_DROPS") or "").strip() or str(Path(settings.home) / "drops")


def open_drops(location: str, s3_endpoint_url: str | None = None,
               s3_client: Any | None = None) -> DropStore:
    """The drop store for a folder or an `s3://bucket/prefix` location."""
    if location.startswith("s3://"):
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3", endpoint_url=s3_endpoint_url)
        return S3Drops(location, s3_client)
    return FolderDrops(Path(location))


class DropManifest:
    """Which drops were processed, how, and in which batch (ops store)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with connect(self.path) as conn:
            ensure_schema(conn, MANIFEST_DDL)

    def is_known(self, location: str, drop: DropFile) -> bool:
        with connect(self.path) as conn:
            return conn.execute(
                "select 1 from file_drop where location = ? and path = ? and identity = ?",
                (location, drop.path, drop.identity),
            ).fetchone() is not None

    def last_header(self, location: str, source: str, table: str) -> list[str] | None:
        with connect(self.path) as conn:
            row = conn.execute(
                "select header from file_drop where location = ? and source = ? and "
                "table_name = ? and status = 'placed' order by processed_at desc, rowid desc "
                "limit 1", (location, source, table),
            ).fetchone()
        return json.loads(row["header"]) if row and row["header"] else None

    def record(self, location: str, results: list[DropResult]) -> int | None:
        """Record processed files; the placed ones form a new batch, whose id is returned."""
        placed = [r for r in results if r.status == "placed"]
        now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        with connect(self.path) as conn, transaction(conn):
            batch_id = None
            if placed:
                sources = sorted({r.source for r in placed if r.source})
                cursor = conn.execute(
                    "insert into file_drop_batch (location, run_key, sources, created_at) "
                    "values (?, ?, ?, ?)",
                    (location, run_key(location, [r.file for r in placed]),
                     ",".join(sources), now),
                )
                batch_id = cursor.lastrowid
            for result in results:
                conn.execute(
                    "insert or replace into file_drop (location, path, identity, status, "
                    "source, table_name, header, rows, message, batch_id, processed_at) "
                    "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (location, result.file.path, result.file.identity, result.status,
                     result.source, result.table, json.dumps(result.header), result.rows,
                     result.message, batch_id if result.status == "placed" else None, now),
                )
        return batch_id

    def batches_after(self, location: str, batch_id: int) -> list[dict[str, Any]]:
        """Placed batches newer than `batch_id`, oldest first: id, run key and sources."""
        with connect(self.path) as conn:
            rows = conn.execute(
                "select batch_id, run_key, sources from file_drop_batch where location = ? "
                "and batch_id > ? order by batch_id", (location, batch_id),
            ).fetchall()
        return [{"batch_id": r["batch_id"], "run_key": r["run_key"],
                 "sources": [s for s in r["sources"].split(",") if s]} for r in rows]


def run_key(location: str, files: Iterable[DropFile]) -> str:
    """The identity of a set of drops: the same files always give the same key."""
    digest = hashlib.sha256(location.encode())
    for key in sorted(f.key for f in files):
        digest.update(b"\0" + key.encode())
    return f"file-drops-{digest.hexdigest()[:24]}"


# A date or sequence number after the table's name: `_2026-01-31`, `-2`, `.20260131T0900Z`.
# No table name has a part starting with a digit, so such a suffix names no other table.
_SUFFIX = re.compile(r"[_.-]\d[\dtz_.:-]*")


def _stems(table: RawTable) -> list[str]:
    return [name.removesuffix(".csv") for name in table.file_names()]


def table_for(path: str) -> tuple[str, RawTable]:
    """The source and raw table a dropped file is for, from its folder and name.

    The name must be one of the table's file names (`RawTable.file_names()`), in any readable
    format, optionally followed by a date or sequence number (`_SUFFIX`); a name that only
    starts with a table's name (`invoice_line_items.csv`) names no table.
    """
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise DropRefused(
            f"{path}: the path has an empty or relative part ('//', '.' or '..'), so it "
            "cannot be told apart from another file; upload it as <source>/<table>.csv, with "
            "single slashes"
        )
    if len(parts) != 2:
        raise DropRefused(
            f"{path}: put each file in a folder named for its source ({', '.join(SOURCES)}), "
            "as <source>/<table>.csv"
        )
    source, name = parts
    if source not in SOURCES:
        raise DropRefused(
            f"{path}: folder {source!r} is no source q2c knows; use one of "
            f"{', '.join(SOURCES)}"
        )
    stem = name.lower()
    for suffix in READABLE:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        raise DropRefused(
            f"{path}: q2c reads CSV or JSON exports ({', '.join(READABLE)}); export the "
            "table in one of those formats"
        )
    by_stem = {s: t for t in tables_of(source) for s in _stems(t)}
    if stem in by_stem:
        return source, by_stem[stem]
    for candidate, table in by_stem.items():
        rest = stem[len(candidate):]
        if stem.startswith(candidate) and rest and _SUFFIX.fullmatch(rest):
            return source, table
    known = ", ".join(t.name for t in tables_of(source)) or "(none declared)"
    near = sorted({t.name for t in by_stem.values() if stem.startswith(t.name)}, key=len)
    hint = (f" ({stem!r} only starts with the table name {near[-1]!r}, and q2c does not "
            "guess which table a longer name means)") if near else ""
    raise DropRefused(
        f"{path}: no {source} table is named by this file{hint}; name it exactly after one "
        f"of {known} (a date or number may follow: <table>_2026-01-31.csv)"
    )


def read_records(path: str, data: bytes) -> tuple[list[str], list[tuple[int, Any]], str]:
    """Header and records of a CSV or JSON export, each record with its line or position, and
    a note on columns left out (empty ones without a name).

    CSV records are lists of fields in header order; JSON records are objects. Header
    names are normalized as the ingest step does (`Customer Memo ` -> `customer_memo`).
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DropRefused(f"{path}: the file is UTF-16; re-export it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DropRefused(
            f"{path}: byte {exc.start} is not UTF-8 (0x{data[exc.start]:02X}); re-export the "
            "file as UTF-8"
        ) from exc
    if path.lower().endswith(".csv"):
        return _csv_records(path, text)
    return _json_records(path, text)


def _csv_records(path: str, text: str) -> tuple[list[str], list[tuple[int, Any]], str]:
    records = CsvRecords(text)
    try:
        header = [normalize_column_name(name) for name in next(records, [])]
        rows = [(records.line_num, values) for values in records if any(
            v.strip() for v in values)]
    except csv.Error as exc:
        raise DropRefused(f"{path}: {records.problem(exc)}.") from exc
    try:
        return unnamed_report(path, header, rows)
    except LandingFileError as exc:
        raise DropRefused(str(exc)) from None


class _RepeatedKey(ValueError):
    """A JSON object with the same key twice: the parser would silently keep the last."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _RepeatedKey(key)
        found[key] = value
    return found


def _json_records(path: str, text: str) -> tuple[list[str], list[tuple[int, Any]], str]:
    records: list[tuple[int, Any]] = []
    where = ""
    try:
        if text.lstrip().startswith("["):
            items = json.loads(text, parse_float=Decimal, object_pairs_hook=_object)
            records = [(n, item) for n, item in enumerate(items, start=1)]
        else:
            for number, line in enumerate(text.splitlines(), start=1):
                where = f" on line {number}"
                if line.strip():
                    records.append((number, json.loads(line, parse_float=Decimal,
                                                       object_pairs_hook=_object)))
    except json.JSONDecodeError as exc:
        raise DropRefused(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
            "export an array of objects or one object per line"
        ) from exc
    except _RepeatedKey as exc:
        raise DropRefused(
            f"{path}: the key {exc.args[0]!r} appears twice in one object{where}; q2c cannot "
            "tell which value is right. Re-export the file with each key once"
        ) from None
    except RecursionError:
        raise DropRefused(f"{path}: the JSON nests too deeply to read; export one flat "
                          "object per row") from None
    bad = next((n for n, item in records if not isinstance(item, dict)), None)
    if bad is not None:
        raise DropRefused(f"{path}: record {bad} is not a JSON object; export one object per "
                          "row, with column names as keys")
    header: dict[str, None] = {}
    normalized = []
    for number, item in records:
        row: dict[str, Any] = {}
        named: dict[str, str] = {}
        for key, value in item.items():
            column = normalize_column_name(key)
            if column in named:
                raise DropRefused(
                    f"{path}: record {number} has the keys {named[column]!r} and {key!r}, "
                    f"which both name the column {column!r}; q2c cannot tell which value is "
                    "right. Re-export the file with one of them"
                )
            named[column] = key
            row[column] = value
        header.update(dict.fromkeys(row))
        normalized.append((number, row))
    note = ""
    if "" in header:
        used = next((n for n, row in normalized if _json_text(row.get("")).strip()), None)
        if used is not None:
            raise DropRefused(
                f"{path}: record {used} has a value under a key with no name; name the key "
                "(or remove it) and re-export"
            )
        del header[""]
        normalized = [(n, {k: v for k, v in row.items() if k}) for n, row in normalized]
        note = "a key with no name and no values was left out"
    return list(header), normalized, note


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def check_header(path: str, table: RawTable, header: list[str]) -> tuple[list[str], list[str]]:
    """New and missing columns; a missing key column refuses the file, and so does a
    column name with a control character (no warehouse takes it as a column name)."""
    controlled = next((n for n, name in enumerate(header, start=1)
                       if any(ord(c) < 32 or ord(c) == 127 for c in name)), None)
    if controlled is not None:
        raise DropRefused(f"{path}: the name of column {controlled} holds a control character "
                          f"({header[controlled - 1]!r}); rename the column and re-export")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise DropRefused(f"{path}: columns {duplicated} appear twice in the header; each "
                          "column must have one name")
    missing_keys = [k for k in table.key if k not in header]
    if missing_keys:
        raise DropRefused(
            f"{path}: key column(s) {', '.join(missing_keys)} of {table.source}.{table.name} "
            "missing from the header; rows cannot be matched without them. Re-export the "
            "file with those columns (named as q2c's table names them)."
        )
    new = [c for c in header if c not in table.columns]
    missing = [c for c in table.columns if c not in header]
    return new, missing


class _Rows:
    """Usable rows of one file, keyed; what is left out is collected with its reason."""

    def __init__(self, table: RawTable, drop_path: str) -> None:
        self.table, self.drop_path = table, drop_path
        self.kept: dict[tuple, dict[str, str]] = {}
        self.lines: dict[tuple, int] = {}
        self.rejected: list[tuple[int, str, dict[str, str]]] = []
        self.duplicates = 0

    def add(self, number: int, row: dict[str, str]) -> None:
        """Keep a row by its key. Of two rows with one key the more recent (by sync or
        update time, else the later line) is kept, as ingest does; the other is left out
        with the line of the one kept, so no version disappears without a trace."""
        empty = next((k for k in self.table.key if not (row.get(k) or "").strip()), None)
        if empty:
            self.rejected.append((number, f"key column `{empty}` is empty", row))
            return
        for k in self.table.key:
            row[k] = row[k].strip()
        key = tuple(row[k] for k in self.table.key)
        if key in self.kept:
            self.duplicates += 1
            versions = [(self.lines[key], self.kept[key]), (number, row)]
            (old_line, older), (number, row) = sorted(versions,
                                                       key=lambda v: row_recency(v[1]))
            self.rejected.append(
                (old_line, f"duplicate key; the version on line {number} was kept", older))
        row[DROP_FILE_COLUMN] = self.drop_path
        self.kept[key], self.lines[key] = row, number


def _rows(path: str, table: RawTable, header: list[str], records) -> _Rows:
    rows = _Rows(table, path)
    for number, record in records:
        if isinstance(record, dict):
            rows.add(number, {k: _json_text(record.get(k)) for k in header})
        elif len(record) != len(header):
            rows.rejected.append((number, f"row has {len(record)} fields but the header has "
                                  f"{len(header)}", dict(zip(header, record, strict=False))))
        else:
            rows.add(number, dict(zip(header, record, strict=True)))
    return rows


def _rejected_csv(header: list[str], rejected: list[tuple[int, str, dict]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "reason", *header])
    for number, reason, row in sorted(rejected, key=lambda r: r[0]):
        writer.writerow([number, reason, *(row.get(c, "") for c in header)])
    return buffer.getvalue().encode()


def place_drop(store: DropStore, drop: DropFile, landing_dir: Path,
               previous_header: list[str] | None = None) -> DropResult:
    """Check one file and upsert its rows into the landing folder; refuse it with a reason."""
    result = DropResult(drop, "placed")
    source, table = table_for(drop.path)
    result.source, result.table = source, table.name
    header, records, note = read_records(drop.path, store.read(drop.path))
    if not header:
        raise DropRefused(f"{drop.path}: the file has no header row (or no JSON records)")
    result.header = header
    result.new_columns, result.missing_columns = check_header(drop.path, table, header)
    result.reordered = bool(previous_header) and set(previous_header) == set(header) and (
        previous_header != header)
    rows = _rows(drop.path, table, header, records)
    writer = LandingWriter(landing_dir, source)
    shape = table_shape(source, table.name)
    writer.write_page([TableBatch(shape, list(rows.kept.values()))])
    writer.merge()
    result.rows, result.duplicate_keys = len(rows.kept), rows.duplicates
    result.rejected_rows = len(rows.rejected) - rows.duplicates
    if rows.rejected:
        store.put_rejected(drop.path, _rejected_csv(header, rows.rejected))
    result.message = "; ".join(filter(None, [_describe(result), note]))
    return result


def _describe(result: DropResult) -> str:
    parts = [f"{result.rows} rows placed into {result.source}.{result.table}"]
    if result.new_columns:
        parts.append(f"new columns kept: {', '.join(result.new_columns)}")
    if result.missing_columns:
        parts.append(f"columns missing (landed empty): {', '.join(result.missing_columns)}")
    if result.reordered:
        parts.append("columns in a new order (read by name)")
    if result.duplicate_keys:
        parts.append(f"{result.duplicate_keys} rows repeat a key; the most recent version was "
                     "kept, the others are in the .rejected-rows.csv in quarantine")
    if result.rejected_rows:
        parts.append(f"{result.rejected_rows} rows left out (see the .rejected-rows.csv in "
                     "quarantine)")
    return "; ".join(parts)


def process_drops(
    store: DropStore, manifest: DropManifest, landing_dir: Path
) -> tuple[list[DropResult], int | None]:
    """Place every drop not processed before; returns the results and the new batch id.

    A refused file is quarantined. A file that fails for another reason (an object deleted
    between listing and reading, a storage error) gets the status `failed`, is not recorded,
    and is tried again on the next run; either way the other files go on.
    """
    results = []
    for drop in store.files():
        if manifest.is_known(store.location, drop):
            continue
        results.append(_process_one(store, manifest, drop, Path(landing_dir)))
    recorded = [r for r in results if r.status != "failed"]
    batch_id = manifest.record(store.location, recorded) if recorded else None
    return results, batch_id


def _process_one(store: DropStore, manifest: DropManifest, drop: DropFile,
                 landing_dir: Path) -> DropResult:
    try:
        previous = None
        try:
            source, table = table_for(drop.path)
            previous = manifest.last_header(store.location, source, table.name)
        except DropRefused:
            pass
        result = place_drop(store, drop, landing_dir, previous)
        log.info("file drop %s: %s", drop.path, result.message)
        return result
    except DropRefused as exc:
        result = DropResult(drop, "quarantined", message=str(exc))
        try:
            result.quarantined_to = store.quarantine(drop.path, str(exc))
        except Exception as move_error:  # noqa: BLE001 - one file must not stop the others
            return _failed(drop, f"{exc}; moving it to the quarantine failed", move_error)
        log.warning("file drop %s refused and quarantined: %s", drop.path, exc)
        return result
    except Exception as exc:  # noqa: BLE001 - one file must not stop the others
        return _failed(drop, f"{drop.path}: could not be read or placed", exc)


def _failed(drop: DropFile, what: str, exc: BaseException) -> DropResult:
    message = (f"{what} ({type(exc).__name__}: {exc}); it is tried again on the next run, "
               "the other files went on")
    log.error("file drop %s failed: %s", drop.path, message)
    return DropResult(drop, "failed", message=message)
