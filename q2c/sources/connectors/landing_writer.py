"""Write pulled or dropped rows into the landing folder, one CSV per raw table, by key.

The ingest step reads `<landing>/<source>/<table>.csv` and replaces the raw table with it,
so that file must always hold the whole table, one row per key. Pulls are incremental, so
the writer upserts: a row whose key is already in the file replaces it, a new key is added.
Child rows that a parent carries as a whole (an invoice's lines, a deal's associations) are
replaced per parent, so a line removed at the source disappears from the file too.

Each page is first written as a part file under `<landing>/<source>/.parts/` (atomically:
a temporary file renamed into place); only then does the connector commit its cursor. The
parts are merged into the table files at the end of a pull, whether it succeeded or not,
and by the next pull if the process died before that. Merging is idempotent, so merging a
part twice changes nothing. Table files are replaced atomically, never half-written.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from q2c.sources.schema import raw_table

PARTS_FOLDER = ".parts"


@dataclass(frozen=True)
class TableShape:
    """How a landed table is keyed and which columns lead its header."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...] = ()
    soft_delete_column: str | None = None
    declared: bool = False


def table_shape(
    source: str, name: str, key: tuple[str, ...] = ("id",),
    soft_delete_column: str | None = None,
) -> TableShape:
    """The raw table's declared shape, read now; the given key when it is not declared yet."""
    try:
        table = raw_table(source, name)
    except KeyError:
        return TableShape(name, key, (), soft_delete_column, declared=False)
    return TableShape(
        name, table.key, table.columns, table.soft_delete_column, declared=True
    )


@dataclass
class TableBatch:
    """Rows for one table. When `replace_column` is set, the rows whose `replace_column`
    is one of `replace_ids` are removed before these rows are added (children of a parent
    that was pulled again). With `newest_wins`, a row replaces the one already kept under
    its key only when its `_fivetran_synced` is not older (states that arrive out of order,
    such as webhook events, beside pulled rows)."""

    table: TableShape
    rows: list[dict[str, str]] = field(default_factory=list)
    replace_column: str | None = None
    replace_ids: list[str] = field(default_factory=list)
    newest_wins: bool = False


SOFT_DELETE_COLUMNS = ("is_deleted", "_fivetran_deleted")


def mark_deleted(
    row: dict, shape: TableShape, deleted: bool, default_column: str = "_fivetran_deleted"
) -> dict:
    """Set the table's soft-delete flags a row does not carry itself.

    Fivetran gives some tables both the provider's `is_deleted` and its own
    `_fivetran_deleted`; every declared one is set, or `default_column` when the table is
    not declared yet (a declared table without either has no soft delete).
    """
    flag = "true" if deleted else "false"
    wanted = [c for c in SOFT_DELETE_COLUMNS if c in shape.columns]
    if shape.soft_delete_column and shape.soft_delete_column not in wanted:
        wanted.append(shape.soft_delete_column)
    if not wanted and not shape.declared:
        wanted = [default_column]
    for column in wanted:
        row.setdefault(column, flag)
    return row


def _csv_text(value: object) -> str:
    return "" if value is None else str(value)


class LandingWriter:
    """Pages of rows for one source's landing folder."""

    def __init__(self, landing_dir: Path, source: str) -> None:
        self.folder = Path(landing_dir) / source
        self.parts = self.folder / PARTS_FOLDER

    def pending_parts(self) -> list[Path]:
        if not self.parts.is_dir():
            return []
        return sorted(self.parts.glob("*.json"))

    def write_page(self, batches: Iterable[TableBatch]) -> Path:
        """Write one page as a part file; once this returns, the page survives a crash."""
        payload = [
            {
                "table": batch.table.name,
                "key": list(batch.table.key),
                "columns": list(batch.table.columns),
                "rows": [{k: _csv_text(v) for k, v in row.items()} for row in batch.rows],
                "replace_column": batch.replace_column,
                "replace_ids": list(batch.replace_ids),
                "newest_wins": batch.newest_wins,
            }
            for batch in batches
        ]
        self.parts.mkdir(parents=True, exist_ok=True)
        existing = self.pending_parts()
        number = int(existing[-1].stem.split("-")[0]) + 1 if existing else 1
        # The suffix keeps two writers that picked the same number from sharing a file.
        target = self.parts / f"{number:08d}-{uuid.uuid4().hex[:12]}.json"
        _atomic_write(target, json.dumps(payload))
        return target

    def merge(self) -> dict[str, int]:
        """Apply every pending part to the table files; returns the rows now in each file.

        A pull and a file drop may land the same source at once; the lock makes their merges
        take turns, so neither overwrites the other's rows.
        """
        if not self.parts.is_dir():
            return {}
        with (self.parts / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            parts = self.pending_parts()
            by_table: dict[str, list[dict]] = {}
            for part in parts:
                for batch in json.loads(part.read_text()):
                    by_table.setdefault(batch["table"], []).append(batch)
            counts = {name: self._merge_table(name, batches)
                      for name, batches in by_table.items()}
            for part in parts:
                part.unlink()
        return counts

    def _merge_table(self, name: str, batches: list[dict]) -> int:
        path = self.folder / f"{name}.csv"
        header, rows = read_csv_rows(path) if path.is_file() else ([], [])
        declared = list(batches[-1]["columns"])
        key = tuple(batches[-1]["key"])
        keyed: dict[tuple, dict[str, str]] = {}
        for row in rows:
            keyed[tuple(row.get(k, "") for k in key)] = row
        for batch in batches:
            if batch["replace_column"]:
                gone = set(batch["replace_ids"])
                column = batch["replace_column"]
                keyed = {k: r for k, r in keyed.items() if r.get(column, "") not in gone}
            for row in batch["rows"]:
                row_key = tuple(row.get(k, "") for k in key)
                if batch.get("newest_wins") and row_key in keyed and (
                        _synced_at(row) < _synced_at(keyed[row_key])):
                    continue
                keyed[row_key] = row
        columns = list(dict.fromkeys(
            [*declared, *header, *(c for row in keyed.values() for c in row)]
        ))
        write_csv_rows(path, columns, keyed.values())
        return len(keyed)


# UTC `YYYY-MM-DD HH:MM:SS[.fff]`, as q2c and Fivetran write it (also `9:17:27`, or a `T`).
_SYNCED = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?)?"
)


def _synced_at(row: dict[str, str]) -> tuple:
    """When a row's state was read, as a sortable tuple; a row without one is the oldest."""
    match = _SYNCED.match((row.get("_fivetran_synced") or "").strip())
    if not match:
        return ()
    fraction = float(f"0.{match.group(7)}") if match.group(7) else 0.0
    return (*(int(part) if part else 0 for part in match.groups()[:6]), fraction)


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        rows = [dict(row) for row in reader]
        return list(reader.fieldnames or []), rows


def write_csv_rows(path: Path, columns: list[str], rows: Iterable[dict[str, str]]) -> None:
    """Write the file under a temporary name and rename it, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False,
        newline="", encoding="utf-8",
    )
    try:
        with handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="raise")
            writer.writeheader()
            for row in rows:
                writer.writerow({c: row.get(c) or "" for c in columns})
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _atomic_write(path: Path, text: str) -> None:
    handle = tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False,
        encoding="utf-8",
    )
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
