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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from urllib.parse import urlsplit

import requests

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
    """How often and how patiently a webhook is tried: 3 tries, 2 s then 4 s apart."""

    attempts: int = 3
    first_delay: float = 2.0
    connect_timeout: float = 5.0
    read_timeout: float = 15.0


def post_webhook(url: str, failure: RunFailure, secret: str | None = None,
                 retry: WebhookRetry = WebhookRetry(),
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """POST the alert as JSON; return the receiver's status code.

    Raises:
        AlertError: The URL is not http(s); the receiver refused the alert (4xx, not
            retried: a resend would be refused too); or every try met a 5xx, a 429, a
            timeout or a connection error.
    """
    _check_url(url)
    body = json.dumps(webhook_payload(failure), sort_keys=True).encode()
    problem = ""
    for attempt in range(1, retry.attempts + 1):
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", ALERT_ID_HEADER: failure.alert_id,
                   TIMESTAMP_HEADER: timestamp, "User-Agent": "q2c-alerts"}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        try:
            answer = requests.post(url, data=body, headers=headers, allow_redirects=False,
                                   timeout=(retry.connect_timeout, retry.read_timeout))
        except requests.RequestException as exc:
            problem = f"{type(exc).__name__}: {_without_secrets(str(exc), url)}"
        else:
            if 200 <= answer.status_code < 300:
                logger.info("run %s: failure alert posted to %s (HTTP %d)", failure.run_id,
                            _host(url), answer.status_code)
                return answer.status_code
            problem = f"HTTP {answer.status_code}: {shorten(answer.text, 200)}"
            # A redirect is refused too: following it would send the body somewhere else.
            if answer.status_code < 500 and answer.status_code != 429:
                raise AlertError(
                    f"the alert webhook {_host(url)} refused the alert of run "
                    f"{failure.run_id} ({problem}); check Q2C_ALERT_WEBHOOK_URL and, if the "
                    "receiver checks signatures, Q2C_ALERT_WEBHOOK_SECRET"
                )
        if attempt < retry.attempts:
            delay = retry.first_delay * 2 ** (attempt - 1)
            logger.warning("run %s: alert webhook %s try %d failed (%s); again in %.0f s",
                           failure.run_id, _host(url), attempt, problem, delay)
            sleep(delay)
    raise AlertError(
        f"the alert webhook {_host(url)} did not take the alert of run {failure.run_id} in "
        f"{retry.attempts} tries (last: {problem}); check that the receiver is up"
    )


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or _port(url) is None:
        raise AlertError(
            f"Q2C_ALERT_WEBHOOK_URL {_host(url)!r} is not an http(s) URL; give the "
            "receiver's full address, e.g. https://hooks.example.com/q2c"
        )


def _port(url: str) -> str | None:
    """`:<port>` as written, `` without one, None when it is not a port number."""
    try:
        port = urlsplit(url).port
    except ValueError:
        return None
    return f":{port}" if port else ""


def _host(url: str) -> str:
    """Scheme, host, port and path of a URL: never its query or user, which may hold a token."""
    parts = urlsplit(url)
    if not parts.scheme:
        return "(not a URL)"
    return f"{parts.scheme}://{parts.hostname or ''}{_port(url) or ''}{parts.path}"


def _without_secrets(text: str, url: str) -> str:
    """An HTTP library's message without the URL's query and password, which it may quote."""
    parts = urlsplit(url)
    for secret in (parts.query, parts.password):
        if secret:
            text = text.replace(secret, "(hidden)")
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
