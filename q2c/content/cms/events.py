"""Publish events: hints to look again, never content.

A CMS tells q2c that an item changed by calling `q2c cms events serve` (a small HTTP
endpoint): the endpoint checks the event with the connector's `verify_event` (signature
and shape, where the system signs) and writes the raw headers and body, untouched, to
`$Q2C_HOME/cms/inbox/<source>/<received>-<body sha256>.json`. A copy of an event whose
body is already waiting in the inbox is answered 202 and not written again. Only the
headers a connector reads to verify the event again are kept: `Authorization`, `Cookie`
and `Proxy-Authorization` never reach the disk (a shared-secret header a system sends,
such as Sitecore's, is kept, since the sensor checks it again). A request that has not
arrived within `REQUEST_TIMEOUT` seconds is dropped. The sensor of the source takes
each file with `take_event()`: it verifies it again, fetches the item through the API,
records what the API returns (never what the event says) and compares: the version and
body hash the event claims against the API's. Every event and its outcome is kept in
`cms_events`; taken files move to `done/` (or `rejected/`) beside the inbox.

An event the source cannot be asked about (down, 429) is recorded as `unavailable`; the
reconcile catches the change later.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from q2c.content.cms.base import (
    CmsConnector,
    CmsError,
    CmsUnavailable,
    EventRejected,
    PublishEvent,
)
from q2c.content.cms.store import CmsStore
from q2c.content.cms.sync import refresh_item

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 1024 * 1024
REQUEST_TIMEOUT = 10.0
# Credentials of the caller, not of the event: never written to the inbox.
UNSTORED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_INBOX_LOCK = threading.Lock()


@dataclass(frozen=True)
class EventOutcome:
    """What came of one event for one locale of its item.

    Attributes:
        outcome: `rejected` (did not verify), `deferred` (no locale known yet: the next
            sync reads the item), `unavailable`, `unreadable`, `retired` (gone, or
            retired in the CMS), `new_version`, `approved`, or `unchanged`.
        matches: Whether the event's claimed version and body hash agree with the API
            (None when the event claims neither, or the API was not asked).
        changed: Whether the store changed.
    """

    source: str
    external_id: str | None
    locale: str | None
    outcome: str
    detail: str = ""
    matches: bool | None = None
    changed: bool = False


def take_event(
    connector: CmsConnector, store: CmsStore, headers: Mapping[str, str], body: bytes,
    now: dt.datetime, received_at: dt.datetime | None = None,
) -> list[EventOutcome]:
    """Verify one raw event, re-fetch its item(s) through the API and record the outcome.

    A connector with `verify_events` (one call naming several items, as Sitecore's
    webhooks do) has each item taken; otherwise `verify_event` reads the one.
    """
    received_at = received_at or now
    source = connector.source
    try:
        events = verify(connector, headers, body)
    except CmsError as exc:  # EventRejected, or a body the connector cannot read
        log.warning("cms %s: publish event rejected: %s", source, exc)
        store.record_event(source, received_at, now, "rejected", str(exc))
        return [EventOutcome(source, None, None, "rejected", str(exc))]
    if not events:
        detail = "the event names no item; the reconcile picks its changes up"
        store.record_event(source, received_at, now, "deferred", detail)
        return [EventOutcome(source, None, None, "deferred", detail)]
    outcomes = []
    for event in events:
        locales = ([event.locale] if event.locale
                   else store.locales_of(source, event.external_id))
        if not locales:
            detail = ("the event names no locale and q2c has not recorded this item yet; "
                      "the next sync reads it")
            _record(store, event, received_at, now, "deferred", detail)
            outcomes.append(EventOutcome(source, event.external_id, None, "deferred", detail))
        outcomes += [_take(connector, store, event, locale, received_at, now)
                     for locale in locales]
    return outcomes


def verify(connector: CmsConnector, headers: Mapping[str, str], body: bytes
           ) -> list[PublishEvent]:
    """Every item event a call names (`verify_events` where the connector has it).

    Raises:
        EventRejected: When the signature, time or shape does not check out.
    """
    many = getattr(connector, "verify_events", None)
    return list(many(headers, body)) if many else [connector.verify_event(headers, body)]


def _take(connector: CmsConnector, store: CmsStore, event: PublishEvent, locale: str,
          received_at: dt.datetime, now: dt.datetime) -> EventOutcome:
    source = connector.source
    try:
        recorded, gone = refresh_item(connector, store, event.external_id, locale, now)
    except CmsUnavailable as exc:
        detail = f"{exc}; the reconcile will look again"
        log.warning("cms %s: event for item %s (%s) not checked: %s", source,
                    event.external_id, locale, detail)
        _record(store, event, received_at, now, "unavailable", detail, locale=locale)
        return EventOutcome(source, event.external_id, locale, "unavailable", detail)
    except CmsError as exc:
        log.warning("cms %s: event for item %s (%s): %s", source, event.external_id,
                    locale, exc)
        _record(store, event, received_at, now, "unreadable", str(exc), locale=locale)
        return EventOutcome(source, event.external_id, locale, "unreadable", str(exc))
    if recorded is None:
        detail = f"the API no longer has the item: {gone} approved version(s) retired"
        _record(store, event, received_at, now, "retired", detail, locale=locale)
        return EventOutcome(source, event.external_id, locale, "retired", detail,
                            changed=bool(gone))
    row = recorded.version
    mismatches = []
    if event.source_version is not None and event.source_version != row.source_version:
        mismatches.append(f"the event names version {event.source_version}, the API "
                          f"returns {row.source_version}")
    if event.body_sha256 is not None and event.body_sha256 != row.raw_sha256:
        mismatches.append(f"the event's body (sha256 {event.body_sha256[:12]}…) differs from "
                          f"the API's ({row.raw_sha256[:12]}…)")
    claims = event.source_version is not None or event.body_sha256 is not None
    matches = None if not claims else not mismatches
    if recorded.retired or (row.status == "retired" and recorded.changed):
        outcome = "retired"
    elif recorded.inserted:
        outcome = "new_version"
    elif recorded.approved:
        outcome = "approved"
    else:
        outcome = "unchanged"
    detail = f"API: {row.label}, {row.status}, sha256 {row.sha256[:12]}…"
    if mismatches:
        detail += "; not trusted: " + "; ".join(mismatches) + "; the API's version is recorded"
        log.warning("cms %s: event %s for item %s (%s) not trusted: %s", source,
                    event.event_id or "", event.external_id, locale, "; ".join(mismatches))
    _record(store, event, received_at, now, outcome, detail, locale=locale,
            api_version=row.source_version, api_sha256=row.raw_sha256, matches=matches)
    return EventOutcome(source, event.external_id, locale, outcome, detail, matches,
                        recorded.changed)


def _record(store: CmsStore, event: PublishEvent, received_at: dt.datetime,
            now: dt.datetime, outcome: str, detail: str, locale: str | None = None,
            **fields: object) -> None:
    matches = fields.pop("matches", None)
    store.record_event(
        event.source, received_at, now, outcome, detail, event_id=event.event_id,
        action=event.action, external_id=event.external_id, locale=locale or event.locale,
        event_version=event.source_version, event_sha256=event.body_sha256,
        matches=None if matches is None else int(bool(matches)), **fields,
    )


# The inbox


def inbox_dir(cms_dir: Path, source: str) -> Path:
    return Path(cms_dir) / "inbox" / source


def write_inbox(cms_dir: Path, source: str, headers: Mapping[str, str], body: bytes,
                received_at: dt.datetime) -> Path:
    """Keep one raw event (body byte for byte, headers but the caller's credentials) for
    the source's sensor; a body already waiting is not written twice (its file is
    returned)."""
    folder = inbox_dir(cms_dir, source)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(body).hexdigest()
    with _INBOX_LOCK:
        waiting = queued_copy(cms_dir, source, body)
        if waiting is not None:
            return waiting
        name = f"{received_at.astimezone(dt.UTC):%Y%m%dT%H%M%S%fZ}-{digest[:32]}.json"
        record = {
            "source": source,
            "received_at": received_at.astimezone(dt.UTC).isoformat(),
            "headers": stored_headers(headers),
            "body_base64": base64.b64encode(body).decode("ascii"),
            "body_sha256": digest,
        }
        partial = folder / f".{name}.{uuid.uuid4().hex[:8]}.partial"
        partial.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
        os.replace(partial, folder / name)
    return folder / name


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers kept with an event: all but the caller's credentials."""
    return {str(k): str(v) for k, v in headers.items() if str(k).lower() not in UNSTORED_HEADERS}


def queued_copy(cms_dir: Path, source: str, body: bytes) -> Path | None:
    """The inbox file already waiting with this exact body, if any."""
    digest = hashlib.sha256(body).hexdigest()
    return next(iter(sorted(inbox_dir(cms_dir, source).glob(f"*-{digest[:32]}.json"))), None)


def pending_events(cms_dir: Path, source: str) -> list[Path]:
    """Inbox files not taken yet, oldest first."""
    folder = inbox_dir(cms_dir, source)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("*.json") if path.is_file())


def take_inbox_file(connector: CmsConnector, store: CmsStore, path: Path,
                    now: dt.datetime) -> list[EventOutcome]:
    """Take one inbox file and move it to `done/` (or `rejected/`)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        headers = {str(k): str(v) for k, v in record["headers"].items()}
        body = base64.b64decode(record["body_base64"], validate=True)
        received_at = dt.datetime.fromisoformat(record["received_at"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        detail = f"inbox file {path.name} is not an event q2c wrote: {exc}"
        log.warning("cms %s: %s", connector.source, detail)
        store.record_event(connector.source, now, now, "rejected", detail)
        _move(path, "rejected")
        return [EventOutcome(connector.source, None, None, "rejected", detail)]
    outcomes = take_event(connector, store, headers, body, now, received_at)
    rejected = any(outcome.outcome == "rejected" for outcome in outcomes)
    _move(path, "rejected" if rejected else "done")
    return outcomes


def _move(path: Path, folder: str) -> None:
    target = path.parent / folder
    target.mkdir(exist_ok=True)
    os.replace(path, target / path.name)


# The endpoint


def make_event_server(
    connectors: Mapping[str, CmsConnector], cms_dir: Path, host: str = "127.0.0.1",
    port: int = 0, clock: Callable[[], dt.datetime] | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
) -> ThreadingHTTPServer:
    """An HTTP server taking `POST /<source>` publish events into the inbox.

    An event is verified with the source's connector first: a bad signature or shape is
    answered 401 with the reason and never written; a good one is written as received
    and answered 202. Nothing is fetched here: the sensor does that.
    """
    clock = clock or (lambda: dt.datetime.now(dt.UTC))

    class Handler(BaseHTTPRequestHandler):
        server_version = "q2c-cms-events"
        timeout = request_timeout  # a half-sent request frees its thread after this

        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            """Adobe I/O Events checks a webhook URL by sending `?challenge=<value>` and
            expects the value back; nothing else is served on GET."""
            source, _, query = self.path.strip("/").partition("?")
            challenge = parse_qs(query).get("challenge", [""])[0]
            if source not in connectors or not challenge or len(challenge) > 256:
                self._reply(404, "this endpoint takes publish events by POST")
                return
            data = json.dumps({"challenge": challenge}).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            source = self.path.strip("/").split("?", 1)[0]
            connector = connectors.get(source)
            if connector is None:
                self._reply(404, f"no cms source {source!r}; post to /"
                            + " or /".join(sorted(connectors)))
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_EVENT_BYTES:
                self._reply(413 if length > 0 else 411, "send a Content-Length up to "
                            f"{MAX_EVENT_BYTES} bytes")
                return
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                log.warning("cms %s: event body not sent within %s s; connection dropped",
                            source, request_timeout)
                self.close_connection = True
                return
            headers = {key: value for key, value in self.headers.items()}
            try:
                events = verify(connector, headers, body)
            except EventRejected as exc:
                log.warning("cms %s: publish event refused at the endpoint: %s", source, exc)
                self._reply(401, f"event rejected: {exc}")
                return
            except CmsError as exc:
                log.warning("cms %s: unreadable publish event at the endpoint: %s", source, exc)
                self._reply(400, f"event not readable: {exc}")
                return
            if queued_copy(cms_dir, source, body) is not None:
                log.info("cms %s: a copy of a waiting event for item(s) %s ignored", source,
                         ", ".join(e.external_id for e in events) or "none")
                self._reply(202, "already queued")
                return
            path = write_inbox(cms_dir, source, headers, body, clock())
            log.info("cms %s: event for item(s) %s queued as %s", source,
                     ", ".join(e.external_id for e in events) or "none", path.name)
            self._reply(202, "queued")

        def _reply(self, status: int, text: str) -> None:
            data = (text + "\n").encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("cms events endpoint: %s", format % args)

    return ThreadingHTTPServer((host, port), Handler)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="cms-events", daemon=True)
    thread.start()
    return thread
