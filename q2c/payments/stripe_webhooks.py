"""The Stripe webhook endpoint: `POST /stripe`, verified, stored once, answered at once.

`q2c webhooks serve` runs it on 127.0.0.1; in production a reverse proxy terminates TLS
and forwards the endpoint's public URL to it, body untouched. Each request is answered as
Stripe expects (https://docs.stripe.com/webhooks#acknowledge-events-immediately):

- 200 with `{"event": ..., "outcome": ...}` once the event is in the ops store
  (`applied`, `stale`, `ignored`, or `duplicate` for an event taken before);
- 400 with `{"error": reason}` for a missing or wrong signature, a timestamp outside the
  tolerance, a replayed request, or a body that is no Stripe event (then with `"field"`
  too, and the body kept in `stripe_webhook_quarantine`): Stripe shows the reason in the
  endpoint's delivery log and retries;
- 404, 405 (with `Allow: POST`), 411 and 413 for a wrong path, method, a missing or too
  large body;
- 500 when the store cannot be written: Stripe retries later, and the event is taken once;
- 503 with `Retry-After` when `max_handlers` requests are being served already.

Nothing slow happens while Stripe waits: one SQLite transaction per event. A client
cannot hold a thread either: the whole request (head and body) must arrive within
`request_deadline` seconds, or the connection is dropped. Production still runs behind a
reverse proxy that buffers each request before passing it on (docs/payments.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from q2c import opsdb
from q2c.payments.stripe_events import (
    EventRejected,
    ReplayedRequest,
    ensure_schema,
    parse_event,
    quarantine_event,
    record_event,
)
from q2c.payments.stripe_signature import DEFAULT_TOLERANCE, SignatureRejected, verify

log = logging.getLogger(__name__)

PATH = "/stripe"
# Stripe's events stay far below this (its largest objects are a few hundred KB).
MAX_EVENT_BYTES = 1024 * 1024
# How long one read may wait, and how long the whole request (head and body) may take.
REQUEST_TIMEOUT = 10.0
REQUEST_DEADLINE = 30.0
# Requests served at once; more are answered 503 at once, from threads counted apart.
MAX_HANDLERS = 32
RETRY_AFTER_SECONDS = 5
# How long a refused connection is given to take the 503 and close before it is dropped.
BUSY_LINGER = 2.0
OTHER_METHODS = ("GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")


def make_webhook_server(
    ops_store: Path, secrets: Sequence[str], host: str = "127.0.0.1", port: int = 0,
    tolerance: int = DEFAULT_TOLERANCE, clock: Callable[[], float] = time.time,
    request_timeout: float = REQUEST_TIMEOUT, request_deadline: float = REQUEST_DEADLINE,
    max_handlers: int = MAX_HANDLERS,
) -> ThreadingHTTPServer:
    """An HTTP server taking Stripe events at `POST /stripe` into the ops store."""
    if not secrets:
        raise ValueError("the Stripe webhook endpoint needs at least one signing secret")
    with opsdb.connect(ops_store) as conn:
        ensure_schema(conn)

    class Handler(BaseHTTPRequestHandler):
        server_version = "q2c-stripe-webhooks"
        timeout = request_timeout  # a half-sent request frees its thread after this

        def handle(self) -> None:
            self._deadline = _Deadline(self.connection, request_deadline)
            try:
                super().handle()
            finally:
                self._deadline.disarm()

        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            if self.path.split("?", 1)[0] != PATH:
                self._reply(404, {"error": f"Stripe events are taken at {PATH}"})
                return
            body = self._body()
            if body is None:
                return
            try:
                signed = verify(body, self.headers.get("Stripe-Signature"), secrets,
                                clock(), tolerance)
            except SignatureRejected as exc:
                log.warning("stripe webhook refused: %s", exc)
                self._reply(400, {"error": str(exc)})
                return
            except Exception as exc:
                log.warning("stripe webhook refused: the signature could not be checked "
                            "(%s)", type(exc).__name__)
                self._reply(400, {"error": "the Stripe-Signature header could not be checked "
                                           f"({type(exc).__name__}); send it as Stripe does"})
                return
            try:
                event = parse_event(body)
            except EventRejected as exc:
                self._quarantine(body, exc)
                return
            self._take(event, body, signed.replay_key, signed.timestamp)

        def _body(self) -> bytes | None:
            try:
                length = int(self.headers.get("Content-Length") or -1)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_EVENT_BYTES:
                self._reply(413 if length > 0 else 411,
                            {"error": f"send a Content-Length up to {MAX_EVENT_BYTES} bytes"})
                return None
            try:
                body = self.rfile.read(length)
            except (TimeoutError, OSError):
                body = b""
            if len(body) < length or not self._deadline.disarm():
                log.warning("stripe webhook: the body did not arrive within %s s (or %s s "
                            "between two reads); connection dropped", request_deadline,
                            request_timeout)
                self.close_connection = True
                return None
            return body

        def _quarantine(self, body: bytes, rejected: EventRejected) -> None:
            now = dt.datetime.fromtimestamp(clock(), dt.UTC)
            try:
                with opsdb.connect(ops_store) as conn:
                    deliveries = quarantine_event(conn, body, rejected, now)
            except sqlite3.Error as exc:
                log.error("stripe webhook: a signed body refused (%s) could not be kept in "
                          "stripe_webhook_quarantine of %s (%s); Stripe will retry it",
                          rejected, ops_store, exc)
                self._reply(500, {"error": "the event could not be stored; retry later"})
                return
            log.warning("stripe webhook refused and quarantined (delivery %d of this body): "
                        "%s", deliveries, rejected)
            self._reply(400, {"error": str(rejected), "field": rejected.field})

        def _take(self, event: dict, body: bytes, replay_key: str, signed_at: int) -> None:
            now = dt.datetime.fromtimestamp(clock(), dt.UTC)
            try:
                with opsdb.connect(ops_store) as conn:
                    outcome = record_event(conn, event, body, replay_key, signed_at, now,
                                           tolerance)
            except ReplayedRequest as exc:
                log.warning("stripe webhook refused: %s", exc)
                self._reply(400, {"error": str(exc)})
                return
            except sqlite3.Error as exc:
                log.error("stripe event %s not stored in %s (%s); Stripe will retry it",
                          event["id"], ops_store, exc)
                self._reply(500, {"error": "the event could not be stored; retry later"})
                return
            except Exception:
                # Answered, so Stripe retries; nothing was kept (the transaction rolled back).
                log.exception("stripe event %s (%s) could not be taken; Stripe will retry "
                              "it", event["id"], event["type"])
                self._reply(500, {"error": "the event could not be taken; retry later"})
                return
            if outcome.outcome == "duplicate":
                log.info("stripe event %s (%s): delivered again; taken before, nothing "
                         "changed", outcome.event_id, outcome.event_type)
            self._reply(200, {"event": outcome.event_id, "outcome": outcome.outcome,
                              "detail": outcome.detail})

        def _not_allowed(self) -> None:
            self._reply(405, {"error": f"Stripe events are taken by POST {PATH}"},
                        allow="POST")

        def _reply(self, status: int, payload: dict, allow: str | None = None) -> None:
            if not self._deadline.disarm():
                self.close_connection = True  # cut at the deadline: nobody to answer
                return
            data = (json.dumps(payload) + "\n").encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if allow:
                self.send_header("Allow", allow)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("stripe webhook endpoint: %s", format % args)

    for method in OTHER_METHODS:
        setattr(Handler, f"do_{method}", Handler._not_allowed)
    server = _BoundedServer((host, port), Handler, max_handlers)
    return server


class _Deadline:
    """Shuts a connection down when its request has not fully arrived in time.

    A read timeout bounds each read only: a client sending a byte every few seconds would
    hold its thread for as long as it likes. Shutting the socket down ends the read that
    waits, whatever it waits for (the request line, a header, the body).
    """

    def __init__(self, connection: socket.socket, seconds: float) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._state = "armed"
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> bool:
        """Stop the clock; False when the deadline had passed already."""
        with self._lock:
            self._timer.cancel()
            if self._state == "armed":
                self._state = "disarmed"
            return self._state == "disarmed"

    def _cut(self) -> None:
        with self._lock:
            if self._state != "armed":
                return
            self._state = "cut"
        try:
            self._connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server with at most `max_handlers` requests served at once.

    One more connection gets a 503 with `Retry-After` from a short-lived thread, at most
    `max_handlers` of those at a time too; beyond both, the connection is closed unanswered.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_handlers: int) -> None:
        if max_handlers < 1:
            raise ValueError("the Stripe webhook endpoint needs max_handlers of at least 1")
        super().__init__(address, handler)
        self._handlers = threading.BoundedSemaphore(max_handlers)
        self._refusals = threading.BoundedSemaphore(max_handlers)

    def process_request(self, request, client_address) -> None:
        if self._handlers.acquire(blocking=False):
            self._start(self.process_request_thread, request, client_address, self._handlers)
        elif self._refusals.acquire(blocking=False):
            log.warning("stripe webhook endpoint busy: a request from %s answered 503",
                        client_address[0])
            self._start(self._refuse, request, client_address, self._refusals)
        else:
            log.warning("stripe webhook endpoint busy: a connection from %s closed "
                        "unanswered", client_address[0])
            self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        """A connection that broke (cut at its deadline, or closed by the client) is a
        line in the log; anything else is logged with its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.info("stripe webhook: the connection from %s ended early (%s)",
                     client_address[0], type(error).__name__)
            return
        log.error("stripe webhook: the request from %s failed", client_address[0],
                  exc_info=error)

    def _start(self, work: Callable, request, client_address,
               slots: threading.BoundedSemaphore) -> None:
        def run() -> None:
            try:
                work(request, client_address)
            finally:
                slots.release()

        try:
            threading.Thread(target=run, daemon=True).start()
        except RuntimeError:
            slots.release()
            self.shutdown_request(request)

    def _refuse(self, request: socket.socket, client_address) -> None:
        """Answer 503 at once, then read what the client still sends until it closes (or
        `BUSY_LINGER` passes): closing on unread data would reset the connection and
        lose the answer."""
        data = (json.dumps({"error": "the endpoint is busy; retry later"}) + "\n").encode()
        head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nRetry-After: {RETRY_AFTER_SECONDS}\r\n"
                "Connection: close\r\n\r\n").encode()
        stop = time.monotonic() + BUSY_LINGER
        try:
            request.settimeout(BUSY_LINGER)
            request.sendall(head + data)
            request.shutdown(socket.SHUT_WR)
            while (left := stop - time.monotonic()) > 0:
                request.settimeout(left)
                if not request.recv(65536):
                    break
        except OSError:
            pass
        finally:
            self.shutdown_request(request)


def serve_in_thread(server: ThreadingHTTPServer,
                    poll_interval: float = 0.5) -> threading.Thread:
    """Serve in a daemon thread; `shutdown()` returns within `poll_interval` seconds."""
    thread = threading.Thread(target=server.serve_forever, name="stripe-webhooks",
                              kwargs={"poll_interval": poll_interval}, daemon=True)
    thread.start()
    return thread
