"""Tell people that a run failed: an email and a JSON webhook, built from the same facts.

Nobody watches the nightly job, so a failed run must reach someone: by email through the
mail channel the invoices use (`Q2C_ALERT_EMAIL`) and by a JSON POST any chat, paging or
ticket system can take (`Q2C_ALERT_WEBHOOK_URL`). Both carry the run id, the job, each
failed step with its error, and a link to the run in the Dagster UI.

The webhook body is signed when `Q2C_ALERT_WEBHOOK_SECRET` is set: the receiver recomputes
`HMAC-SHA256(secret, "<X-Q2C-Timestamp>.<body>")` and compares it with `X-Q2C-Signature`
(`sha256=<hex>`), so it can trust the sender and refuse an old body played again. A 5xx
answer, a timeout or a dropped connection is retried; every try carries the same
`alert_id`, so a receiver that saw the first one can drop the repeat.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error

from q2c.delivery.envelope import EMAIL, Envelope
from q2c.delivery.errors import DeliveryError
from q2c.delivery.mail_transport import EmlFolderTransport, email_payload
from q2c.delivery.message import IDEMPOTENCY_HEADER
from q2c.settings import Settings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Q2C-Signature"
TIMESTAMP_HEADER = "X-Q2C-Timestamp"
ALERT_ID_HEADER = "X-Q2C-Alert-Id"
# An error message is cut here: enough to act on, short enough for any chat message.
ERROR_LIMIT = 2000
# At most this much of a refusing receiver's answer is read: its first words say why.
ANSWER_LIMIT = 64 * 1024


class AlertError(RuntimeError):
    """An alert could not be delivered; the message names the destination and the fix."""


@dataclass(frozen=True)
class FailedStep:
    """One step that failed, with the error a person needs to start with."""

    step_key: str
    error: str


@dataclass(frozen=True)
class RunFailure:
    """What went wrong in one run, in the words both alerts use."""

    run_id: str
    job_name: str
    failed_steps: tuple[FailedStep, ...]
    run_url: str
    failed_at: dt.datetime
    message: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def alert_id(self) -> str:
        """The same id for every try of every channel of this run's alert."""
        return f"q2c-run-failure-{self.run_id}"


def run_url(dagster_url: str, run_id: str) -> str:
    """The run's page in the Dagster UI (`Q2C_DAGSTER_URL`)."""
    return f"{dagster_url.rstrip('/')}/runs/{run_id}"


def shorten(text: str, limit: int = ERROR_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def webhook_payload(failure: RunFailure) -> dict:
    """The JSON body of the webhook: flat, named fields a receiver maps without guessing."""
    return {
        "alert_id": failure.alert_id,
        "event": "run_failure",
        "run_id": failure.run_id,
        "job_name": failure.job_name,
        "failed_steps": [{"step_key": step.step_key, "error": step.error}
                         for step in failure.failed_steps],
        "message": failure.message,
        "run_url": failure.run_url,
        "failed_at": failure.failed_at.astimezone(dt.UTC).isoformat(),
        "tags": failure.tags,
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`, as the receiver checks it."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


@dataclass(frozen=True)
class WebhookRetry:
    """How often and how patiently a webhook is tried: 3 tries, 2 s then 4 s apart.

    `read_timeout` bounds each wait for the next bytes, `deadline` a whole try (connecting,
    sending, the answer's head and the part of its body that is read): a receiver that
    sends a byte a second cannot hold the alert longer than that.
    """

    attempts: int = 3
    first_delay: float = 2.0
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    deadline: float = 30.0


class _TryFailed(Exception):
    """One try got no usable answer; the message says why in words safe to log."""


def post_webhook(url: str, failure: RunFailure, secret: str | None = None,
                 retry: WebhookRetry = WebhookRetry(),
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """POST the alert as JSON; return the receiver's status code.

    The URL's path and query often hold the receiver's token, so logs and errors name only
    its scheme, host and port, and never quote the HTTP library's messages (which repeat
    the URL, re-encoded).

    Raises:
        AlertError: The URL is not http(s); the receiver refused the alert (4xx, not
            retried: a resend would be refused too); or every try met a 5xx, a 429, a
            timeout or a connection error.
    """
    _check_url(url)
    target = _target(url)
    body = json.dumps(webhook_payload(failure), sort_keys=True).encode()
    problem = ""
    for attempt in range(1, retry.attempts + 1):
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", ALERT_ID_HEADER: failure.alert_id,
                   TIMESTAMP_HEADER: timestamp, "User-Agent": "q2c-alerts"}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        try:
            status, answer, cut = _post_once(url, body, headers, retry)
        except _TryFailed as exc:
            problem = str(exc)
        else:
            if 200 <= status < 300:
                logger.info("run %s: failure alert posted to %s (HTTP %d)", failure.run_id,
                            target, status)
                return status
            late = f", cut at the {retry.deadline:g} s deadline" if cut else ""
            problem = f"HTTP {status}{late}: {shorten(_scrub(answer, url), 200)}"
            # A redirect is refused too: following it would send the body somewhere else.
            if status < 500 and status != 429:
                raise AlertError(
                    f"the alert webhook {target} refused the alert of run "
                    f"{failure.run_id} ({problem}); check Q2C_ALERT_WEBHOOK_URL and, if the "
                    "receiver checks signatures, Q2C_ALERT_WEBHOOK_SECRET"
                )
        if attempt < retry.attempts:
            delay = retry.first_delay * 2 ** (attempt - 1)
            logger.warning("run %s: alert webhook %s try %d failed (%s); again in %.0f s",
                           failure.run_id, target, attempt, problem, delay)
            sleep(delay)
    raise AlertError(
        f"the alert webhook {target} did not take the alert of run {failure.run_id} in "
        f"{retry.attempts} tries (last: {problem}); check that the receiver is up"
    )


def _post_once(url: str, body: bytes, headers: dict[str, str],
               retry: WebhookRetry) -> tuple[int, str, bool]:
    """One POST within `retry.deadline`: the status, unless 2xx the answer's start, and
    whether the deadline cut the answer short.

    A timer cuts the connection at the deadline, whatever it waits for. Only the first
    `ANSWER_LIMIT` bytes of a refusal are read; a 2xx answer's body is not read at all.

    Raises:
        _TryFailed: No status came back: refused, timed out, dropped or cut.
    """
    adapter = _CuttableAdapter()
    timer = threading.Timer(retry.deadline, adapter.cut)
    timer.daemon = True
    timer.start()
    try:
        with requests.Session() as session:
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            with session.post(url, data=body, headers=headers, allow_redirects=False,
                              stream=True,
                              timeout=(retry.connect_timeout, retry.read_timeout)) as answer:
                if 200 <= answer.status_code < 300:
                    return answer.status_code, "", adapter.was_cut
                start = _answer_start(answer)
                return answer.status_code, start, adapter.was_cut
    except requests.RequestException as exc:
        raise _TryFailed(_what_failed(exc, retry, adapter.was_cut)) from None
    finally:
        timer.cancel()
        adapter.release()


def _answer_start(answer: requests.Response) -> str:
    """Up to `ANSWER_LIMIT` bytes of the answer, as text; what came before a cut."""
    data = bytearray()
    try:
        while len(data) < ANSWER_LIMIT:
            chunk = answer.raw.read1(ANSWER_LIMIT - len(data), decode_content=True)
            if not chunk:
                break
            data += chunk
    except (Urllib3Error, OSError):
        pass
    return bytes(data[:ANSWER_LIMIT]).decode(answer.encoding or "utf-8", errors="replace")


def _what_failed(exc: requests.RequestException, retry: WebhookRetry, was_cut: bool) -> str:
    """The failure in q2c's words: the library's own message quotes the URL."""
    name = type(exc).__name__
    if was_cut:
        return f"{name}: no complete answer within the {retry.deadline:g} s deadline"
    if isinstance(exc, requests.ConnectTimeout):
        return f"{name}: no connection within {retry.connect_timeout:g} s"
    if isinstance(exc, requests.ReadTimeout):
        return f"{name}: nothing received for {retry.read_timeout:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"{name}: the TLS handshake failed; check the receiver's certificate"
    if isinstance(exc, requests.ConnectionError):
        return f"{name}: the connection was refused or dropped"
    return f"{name}: the request could not be made"


class _CuttableAdapter(HTTPAdapter):
    """An HTTP adapter that can cut every connection it opened, from another thread.

    A read timeout bounds each read only. Every socket this adapter opens is duplicated
    here, and `cut()` shuts the connection down through the copy: the read, write or TLS
    handshake waiting on it ends at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copies: list[socket.socket] = []
        self.was_cut = False
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes()

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = self._pool_classes()
        return manager

    def cut(self) -> None:
        with self._lock:
            self.was_cut = True
            for copy in self._copies:
                _shut(copy)

    def release(self) -> None:
        with self._lock:
            for copy in self._copies:
                copy.close()
            self._copies.clear()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            copy = sock.dup()
            self._copies.append(copy)
            if self.was_cut:
                _shut(copy)

    def _pool_classes(self) -> dict[str, type]:
        keep = self._keep

        class Kept:
            def _new_conn(self):
                sock = super()._new_conn()
                keep(sock)
                return sock

        plain = type("KeptHTTPConnection", (Kept, HTTPConnection), {})
        tls = type("KeptHTTPSConnection", (Kept, HTTPSConnection), {})
        return {"http": type("KeptHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
                "https": type("KeptHTTPSPool", (HTTPSConnectionPool,),
                              {"ConnectionCls": tls})}


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or _port(url) is None:
        raise AlertError(
            f"Q2C_ALERT_WEBHOOK_URL {_target(url)!r} is not an http(s) URL; give the "
            "receiver's full address, e.g. https://hooks.example.com/q2c"
        )


def _port(url: str) -> str | None:
    """`:<port>` as written, `` without one, None when it is not a port number."""
    try:
        port = urlsplit(url).port
    except ValueError:
        return None
    return f":{port}" if port else ""


def _target(url: str) -> str:
    """Scheme, host and port of a URL, safe to log: its path (Slack-style hooks keep their
    token there), query and user are shown as `/…` at most."""
    parts = urlsplit(url)
    if not parts.scheme:
        return "(not a URL)"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    hidden = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{_port(url) or ''}{hidden}"


def _scrub(text: str, url: str) -> str:
    """A receiver's answer without the URL's path, query or user, in any spelling: an
    error page may quote the request (`Cannot POST /services/T000/B000/<token>`)."""
    parts = urlsplit(url)
    pieces = [parts.path, parts.query, parts.username or "", parts.password or "",
              *parts.path.split("/"), *(value for _, value in parse_qsl(parts.query))]
    spellings: set[str] = set()
    for piece in pieces:
        for plain in (piece, unquote(piece), unquote_plus(piece)):
            spellings |= {plain, quote(plain, safe="/"), quote(plain, safe=""),
                          quote_plus(plain, safe="/"), quote_plus(plain)}
    for spelling in sorted(spellings, key=len, reverse=True):
        if len(spelling.strip("/")) >= 4:
            text = text.replace(spelling, "(hidden)")
    return text


def alert_email(failure: RunFailure, sender: str, recipient: str) -> EmailMessage:
    """The alert as a plain-text email, with a Message-ID derived from the alert and address."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    steps = ", ".join(step.step_key for step in failure.failed_steps) or "the run itself"
    message["Subject"] = f"q2c run failed: {failure.job_name} ({steps})"
    message["Date"] = format_datetime(failure.failed_at.astimezone(dt.UTC))
    key = email_key(failure, recipient)
    message["Message-ID"] = f"<alert.{key}@{_domain(sender)}>"
    message[IDEMPOTENCY_HEADER] = key
    message[ALERT_ID_HEADER] = failure.alert_id
    message.set_content(alert_text(failure))
    return message


def alert_text(failure: RunFailure) -> str:
    lines = [f"The q2c run {failure.run_id} of job {failure.job_name} failed at "
             f"{failure.failed_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC.", ""]
    if failure.failed_steps:
        lines.append("Failed steps:")
        for step in failure.failed_steps:
            lines += [f"- {step.step_key}:", *(f"    {line}" for line in
                                                 step.error.splitlines() or ["failed"])]
    elif failure.message:
        lines.append(failure.message)
    lines += ["", f"The run in the Dagster UI: {failure.run_url}",
              "Fix the cause, then re-execute the failed steps from that page; invoices "
              "already sent are never sent twice."]
    return "\n".join(lines)


def email_key(failure: RunFailure, recipient: str) -> str:
    """One key per run and address: a resent alert is recognisable by its Message-ID."""
    return hashlib.sha256(f"{failure.alert_id}\n{recipient.lower()}".encode()).hexdigest()[:40]


def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2].lower() or "q2c.invalid"


def send_alert_emails(failure: RunFailure, settings: Settings, transport=None) -> list[str]:
    """Send the alert to every `Q2C_ALERT_EMAIL` address by the configured mail channel.

    With the embedded `.eml` channel the messages land in `$Q2C_HOME/alerts/<day>/`, apart
    from the customers' invoices. Returns where each message went.

    Raises:
        AlertError: A message could not be handed over; the others were still tried.
    """
    try:
        transport = transport or alert_mail_transport(settings)
    except (DeliveryError, ValueError) as exc:
        raise AlertError(
            f"the failure alert of run {failure.run_id} cannot be mailed: {exc}"
        ) from exc
    sent, problems = [], []
    for recipient in settings.alert_emails:
        message = alert_email(failure, settings.mail_from, recipient)
        key = str(message[IDEMPOTENCY_HEADER])
        envelope = Envelope(
            key=key, invoice_id=failure.run_id, invoice_number=f"run-failure-{failure.run_id}",
            document_id=failure.alert_id, channel=EMAIL, recipient=recipient,
            payload=email_payload(message), filename=f"{failure.alert_id}.eml",
            content_type="message/rfc822",
        )
        try:
            receipt = transport.send(envelope)
        except DeliveryError as exc:
            problems.append(f"{recipient}: {exc}")
            continue
        logger.info("run %s: failure alert mailed to %s via %s", failure.run_id, recipient,
                    receipt.location)
        sent.append(receipt.location)
    if problems:
        raise AlertError(
            f"the failure alert of run {failure.run_id} was not mailed to "
            + "; ".join(problems) + " (check Q2C_ALERT_EMAIL and the mail settings)"
        )
    return sent


def alert_mail_transport(settings: Settings):
    """The invoices' mail channel; its `.eml` folder variant writes to `$Q2C_HOME/alerts`."""
    from q2c.invoice_delivery import mail_transport

    if settings.mail_channel == "eml":
        return EmlFolderTransport(Path(settings.home) / "alerts")
    return mail_transport(settings)


@dataclass(frozen=True)
class AlertOutcome:
    """Where an alert went; a channel that failed is named in `problems`."""

    emailed: tuple[str, ...] = ()
    webhook_status: int | None = None
    problems: tuple[str, ...] = ()


def send_alert(failure: RunFailure, settings: Settings, transport=None,
               retry: WebhookRetry = WebhookRetry(),
               sleep: Callable[[float], None] = time.sleep) -> AlertOutcome:
    """Send the alert by every configured channel; one failing never stops the other."""
    emailed: list[str] = []
    status, problems = None, []
    if settings.alert_emails:
        try:
            emailed = send_alert_emails(failure, settings, transport)
        except AlertError as exc:
            problems.append(str(exc))
    if settings.alert_webhook_url:
        try:
            status = post_webhook(settings.alert_webhook_url, failure,
                                  settings.alert_webhook_secret, retry, sleep)
        except AlertError as exc:
            problems.append(str(exc))
    return AlertOutcome(tuple(emailed), status, tuple(problems))
