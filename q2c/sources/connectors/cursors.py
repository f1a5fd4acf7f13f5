"""Where each pull stream left off, kept in the operational store (SQLite).

A stream's state is a small JSON document the connector defines: usually the high-water mark
of the provider's updated-at field and the ids landed at exactly that mark, and, while a
pull is under way on an API that does not sort by that field, the page token to resume
from. The connector commits a new state only after the rows of a page are written to the
landing folder, so a pull that fails resumes from its last committed page: a page written
but not yet committed is fetched again and overwrites the same keys, never duplicating them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from q2c.opsdb import connect, ensure_schema, transaction

CURSOR_DDL = """
create table if not exists connector_cursor (
    source text not null,
    stream text not null,
    state text not null,
    committed_at text not null,
    primary key (source, stream)
);
"""


class CursorStore:
    """Committed pull state per (source, stream) in the ops store at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with connect(self.path) as conn:
            ensure_schema(conn, CURSOR_DDL)

    def get(self, source: str, stream: str) -> dict[str, Any]:
        """The last committed state, or an empty one for a stream never pulled."""
        with connect(self.path) as conn:
            row = conn.execute(
                "select state from connector_cursor where source = ? and stream = ?",
                (source, stream),
            ).fetchone()
        return json.loads(row["state"]) if row else {}

    def commit(self, source: str, stream: str, state: dict[str, Any]) -> None:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with connect(self.path) as conn, transaction(conn):
            conn.execute(
                "insert into connector_cursor (source, stream, state, committed_at) "
                "values (?, ?, ?, ?) on conflict (source, stream) do update set "
                "state = excluded.state, committed_at = excluded.committed_at",
                (source, stream, json.dumps(state, sort_keys=True), now),
            )

    def reset(self, source: str, stream: str | None = None) -> None:
        """Forget the state of one stream, or of every stream of a source (a full re-pull)."""
        with connect(self.path) as conn, transaction(conn):
            if stream is None:
                conn.execute("delete from connector_cursor where source = ?", (source,))
            else:
                conn.execute(
                    "delete from connector_cursor where source = ? and stream = ?",
                    (source, stream),
                )
