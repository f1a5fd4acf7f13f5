"""The pull loop every connector shares: pages in, part files written, cursor committed.

A connector turns one stream (an API object such as HubSpot deals) into pages. Each page
carries the rows for one or more raw tables and the stream state to commit once those rows
are safely written. The loop writes the page, then commits; a failure between the two only
means the page is fetched again next time, and the writer upserts by key, so nothing is
landed twice and nothing is skipped.

Incremental pulls filter on the provider's updated-at field with `>=` the committed mark,
never `>`: several records can share a timestamp (a bulk update), and a page can end in the
middle of them. The ids already landed at exactly the mark are kept in the state and
skipped when they come back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from q2c.sources.connectors.cursors import CursorStore
from q2c.sources.connectors.errors import ProviderError
from q2c.sources.connectors.http import HttpClient
from q2c.sources.connectors.landing_writer import LandingWriter, TableBatch

log = logging.getLogger(__name__)


@dataclass
class Watermark:
    """The highest updated-at value landed (cursor text, UTC) and the ids landed at it."""

    value: str | None = None
    ids: set[str] = field(default_factory=set)

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Watermark:
        state = state or {}
        return cls(state.get("high_water"), set(state.get("ids_at_high_water", [])))

    def to_state(self) -> dict[str, Any]:
        return {"high_water": self.value, "ids_at_high_water": sorted(self.ids)}

    def seen(self, record_id: str, moment: str) -> bool:
        """True for a record landed before: older than the mark, or at it with a known id."""
        if self.value is None:
            return False
        return moment < self.value or (moment == self.value and record_id in self.ids)

    def advance(self, record_id: str, moment: str) -> None:
        if self.value is None or moment > self.value:
            self.value, self.ids = moment, {record_id}
        elif moment == self.value:
            self.ids.add(record_id)

    def take(
        self, records: Iterable[dict], id_of: Callable[[dict], str],
        moment_of: Callable[[dict], str],
    ) -> list[dict]:
        """The records not landed before, advancing the mark over them."""
        fresh = []
        for record in records:
            record_id, moment = id_of(record), moment_of(record)
            if self.seen(record_id, moment):
                continue
            fresh.append(record)
            self.advance(record_id, moment)
        return fresh


@dataclass
class Page:
    """Rows of one provider page, and the stream state to commit once they are written."""

    batches: list[TableBatch]
    state: dict[str, Any]
    records: int


@dataclass
class StreamReport:
    stream: str
    records: int = 0
    pages: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)


@dataclass
class PullReport:
    """What one pull landed: records per stream and the rows now in each landed file."""

    source: str
    streams: dict[str, StreamReport] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)

    def records(self, stream: str) -> int:
        report = self.streams.get(stream)
        return report.records if report else 0


class Connector:
    """One provider's pull: its streams, its page logic and the shared commit loop.

    Subclasses set `source` (the q2c source name), `streams` and implement `pages`.
    """

    source: ClassVar[str]
    streams: ClassVar[tuple[str, ...]]

    def __init__(
        self, client: HttpClient, landing_dir: Path, cursors: CursorStore, page_size: int = 100
    ) -> None:
        self.client = client
        self.landing_dir = Path(landing_dir)
        self.cursors = cursors
        self.page_size = page_size

    def pages(self, stream: str, state: dict[str, Any]) -> Iterator[Page]:
        raise NotImplementedError

    def pull(
        self, streams: Iterable[str] | None = None, full_refresh: bool = False
    ) -> PullReport:
        """Pull the streams (all by default) from their committed cursors into the landing
        folder. `full_refresh` forgets the cursors first; keys still upsert."""
        chosen = list(streams) if streams is not None else list(self.streams)
        unknown = [s for s in chosen if s not in self.streams]
        if unknown:
            raise ProviderError(
                self.client.provider,
                f"{self.client.provider}: unknown stream(s) {', '.join(unknown)}; "
                f"streams are {', '.join(self.streams)}",
            )
        writer = LandingWriter(self.landing_dir, self.source)
        writer.merge()
        report = PullReport(self.source)
        try:
            for stream in chosen:
                report.streams[stream] = self._pull_stream(stream, writer, full_refresh)
        finally:
            report.files = writer.merge()
        return report

    def _pull_stream(self, stream: str, writer: LandingWriter, full: bool) -> StreamReport:
        if full:
            self.cursors.reset(self.source, stream)
        state = self.cursors.get(self.source, stream)
        report = StreamReport(stream)
        for page in self.pages(stream, state):
            if page.batches:
                writer.write_page(page.batches)
            self.cursors.commit(self.source, stream, page.state)
            report.pages += 1
            report.records += page.records
            for batch in page.batches:
                name = batch.table.name
                report.rows_by_table[name] = report.rows_by_table.get(name, 0) + len(
                    batch.rows
                )
        log.info(
            "%s.%s: %d records in %d pages landed (cursor %s)", self.source, stream,
            report.records, report.pages, self.cursors.get(self.source, stream).get(
                "high_water"),
        )
        return report
