"""The run-failure alert: a job fails on purpose, the sensor ticks, and the alert arrives.

The job runs in-process on a private SQLite instance; the sensor is ticked against that
instance as the daemon ticks it. The webhook goes to an HTTP server on 127.0.0.1 and the
email to the aiosmtpd server of conftest.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import dagster as dg
import pytest
from provider_servers import LoopbackServer

from orchestration.alerts import run_failure_alert
from orchestration.resources import Q2CSettings
from q2c.alerts import (
    ALERT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertError,
    FailedStep,
    RunFailure,
    WebhookRetry,
    post_webhook,
)

SECRET = "whsec-test-4c1d"
DAGSTER_URL = "http://127.0.0.1:3000"
ERROR = "ledger total 10.00 does not match 12.00 for invoice INV-7"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class WebhookReceiver(LoopbackServer):
    """Keeps every POST; answers the scripted statuses first, then 204."""

    methods = ("POST",)

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        with self.lock:
            self.received.append(Received(handler.path, dict(handler.headers.items()), body))
            status = self.statuses.pop(0) if self.statuses else 204
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    try:
        yield server
    finally:
        server.stop()


@dg.op
def load_ledger() -> int:
    return 2


@dg.op
def post_ledger(rows: int) -> None:
    raise ValueError(ERROR)


@dg.job(name="ledger_close")
def failing_job():
    post_ledger(load_ledger())


@dg.job(name="ledger_open")
def succeeding_job():
    load_ledger()


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    with dg.DagsterInstance.local_temp(
        str(home), overrides={"telemetry": {"enabled": False}}
    ) as instance:
        yield instance


@pytest.fixture
def alert_env(monkeypatch, tmp_path, receiver, smtp_server):
    monkeypatch.setenv("Q2C_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("Q2C_MAIL_CHANNEL", "smtp")
    monkeypatch.setenv("Q2C_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("Q2C_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("Q2C_MAIL_FROM", "q2c <alerts@northwind.example>")
    monkeypatch.setenv("Q2C_ALERT_EMAIL", "data-oncall@northwind.example")
    monkeypatch.setenv("Q2C_ALERT_WEBHOOK_URL", f"{receiver.url}/hooks/q2c")
    monkeypatch.setenv("Q2C_ALERT_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("Q2C_DAGSTER_URL", DAGSTER_URL)
    for name in ("Q2C_CONFIG", "Q2C_SMTP_USER", "Q2C_SMTP_STARTTLS"):
        monkeypatch.delenv(name, raising=False)


def _tick(instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                      resources={"q2c": Q2CSettings()})
    return run_failure_alert.evaluate_tick(context)


def _fail_a_run(instance: dg.DagsterInstance):
    """Tick once to set the cursor (as the daemon does when the sensor starts), then fail."""
    first = _tick(instance, None)
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return result.run_id, _tick(instance, first.cursor)


def test_the_webhook_receives_the_run_id_the_failed_step_its_error_and_the_link(
        alert_env, instance, receiver):
    run_id, tick = _fail_a_run(instance)

    assert [reaction.error for reaction in tick.dagster_run_reactions] == [None]
    assert len(receiver.received) == 1
    posted = receiver.received[0]
    body = posted.json()
    assert posted.path == "/hooks/q2c"
    assert posted.headers["Content-Type"] == "application/json"
    assert body["run_id"] == run_id and body["job_name"] == "ledger_close"
    assert [step["step_key"] for step in body["failed_steps"]] == ["post_ledger"]
    assert body["failed_steps"][0]["error"] == f"ValueError: {ERROR}"
    assert body["run_url"] == f"{DAGSTER_URL}/runs/{run_id}"
    assert body["alert_id"] == posted.headers[ALERT_ID_HEADER] == f"q2c-run-failure-{run_id}"
    failed_at = dt.datetime.fromisoformat(body["failed_at"])
    run_end = instance.get_run_record_by_id(run_id).end_time
    assert failed_at == dt.datetime.fromtimestamp(run_end, dt.UTC)


def test_the_webhook_body_carries_an_hmac_signature_of_timestamp_and_body(
        alert_env, instance, receiver):
    _fail_a_run(instance)

    posted = receiver.received[0]
    timestamp = posted.headers[TIMESTAMP_HEADER]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + posted.body,
                        hashlib.sha256).hexdigest()
    assert posted.headers[SIGNATURE_HEADER] == f"sha256={expected}"
    forged = hmac.new(b"another secret", f"{timestamp}.".encode() + posted.body,
                      hashlib.sha256).hexdigest()
    assert posted.headers[SIGNATURE_HEADER] != f"sha256={forged}"


def test_the_alert_email_reaches_the_smtp_server(alert_env, instance, smtp_server):
    run_id, _ = _fail_a_run(instance)

    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    message = mail.parsed()
    assert mail.rcpt_tos == ["data-oncall@northwind.example"]
    assert message["Subject"] == "q2c run failed: ledger_close (post_ledger)"
    text = message.get_content()
    assert run_id in text and f"ValueError: {ERROR}" in text
    assert f"{DAGSTER_URL}/runs/{run_id}" in text
    assert message["Message-ID"].startswith("<alert.")
    assert message["Message-ID"].endswith("@northwind.example>")


def test_a_run_that_succeeds_alerts_nobody(alert_env, instance, receiver, smtp_server):
    first = _tick(instance, None)
    assert succeeding_job.execute_in_process(instance=instance).success

    tick = _tick(instance, first.cursor)

    assert tick.dagster_run_reactions == [] and receiver.received == []
    assert smtp_server.messages == []


def test_a_failure_seen_by_one_tick_is_not_alerted_again_by_the_next(
        alert_env, instance, receiver):
    _, tick = _fail_a_run(instance)

    again = _tick(instance, tick.cursor)

    assert again.dagster_run_reactions == [] and len(receiver.received) == 1


def test_a_refused_webhook_fails_the_tick_and_the_email_still_goes(
        alert_env, instance, receiver, smtp_server):
    receiver.statuses = [401]

    _, tick = _fail_a_run(instance)

    error = tick.dagster_run_reactions[0].error
    assert error is not None and "refused the alert" in error.message
    assert "HTTP 401" in error.message and SECRET not in error.message
    assert len(receiver.received) == 1, "a 4xx is not retried"
    assert len(smtp_server.messages) == 1


def test_without_destinations_the_failure_is_only_logged(monkeypatch, alert_env, instance,
                                                         receiver, smtp_server):
    monkeypatch.delenv("Q2C_ALERT_EMAIL")
    monkeypatch.delenv("Q2C_ALERT_WEBHOOK_URL")

    _, tick = _fail_a_run(instance)

    assert [reaction.error for reaction in tick.dagster_run_reactions] == [None]
    assert receiver.received == [] and smtp_server.messages == []


def test_with_the_eml_channel_the_alert_is_a_file_under_home_alerts(
        monkeypatch, alert_env, instance, tmp_path):
    monkeypatch.setenv("Q2C_MAIL_CHANNEL", "eml")
    monkeypatch.delenv("Q2C_ALERT_WEBHOOK_URL")

    run_id, tick = _fail_a_run(instance)

    assert tick.dagster_run_reactions[0].error is None
    files = sorted((tmp_path / "home" / "alerts").rglob("*.eml"))
    assert len(files) == 1 and files[0].name.startswith(f"run-failure-{run_id}")
    assert b"post_ledger" in files[0].read_bytes()


def _failure(run_id: str = "0f3c9a7e-run") -> RunFailure:
    return RunFailure(run_id=run_id, job_name="nightly_quote_to_cash",
                      failed_steps=(FailedStep("outbox", "SMTP down"),),
                      run_url=f"{DAGSTER_URL}/runs/{run_id}",
                      failed_at=dt.datetime(2026, 12, 5, 2, 14, tzinfo=dt.UTC))


def test_a_5xx_answer_is_retried_with_the_same_alert_until_it_is_taken(receiver):
    receiver.statuses = [503, 502]
    waits: list[float] = []

    status = post_webhook(f"{receiver.url}/hook", _failure(), SECRET, sleep=waits.append)

    assert status == 204
    # Three tries: the first two answered 5xx; the waits double from 2 s.
    assert waits == [2.0, 4.0]
    assert len({r.body for r in receiver.received}) == 1 and len(receiver.received) == 3
    assert {r.headers[ALERT_ID_HEADER] for r in receiver.received} == {
        "q2c-run-failure-0f3c9a7e-run"}


def test_a_receiver_that_stays_down_is_named_after_the_last_try(receiver):
    receiver.statuses = [500, 500, 500]

    with pytest.raises(AlertError, match=r"did not take the alert .* in 3 tries \(last: "
                                         r"HTTP 500"):
        post_webhook(f"{receiver.url}/hook?token=abc", _failure(), sleep=lambda _: None)

    assert len(receiver.received) == 3


def test_a_receiver_that_is_not_listening_is_tried_again_and_never_named_with_its_query():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook?token=s3cr3t"

    with pytest.raises(AlertError) as raised:
        post_webhook(url, _failure(), retry=WebhookRetry(attempts=2), sleep=lambda _: None)

    assert "in 2 tries" in str(raised.value) and "ConnectionError" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


def test_a_webhook_url_that_is_not_http_is_refused():
    with pytest.raises(AlertError, match="is not an http"):
        post_webhook("ftp://127.0.0.1/hook", _failure(), sleep=lambda _: None)


def test_the_body_without_a_secret_is_unsigned(receiver):
    post_webhook(f"{receiver.url}/hook", _failure(), None, sleep=lambda _: None)

    assert SIGNATURE_HEADER not in receiver.received[0].headers
    assert receiver.received[0].json()["failed_steps"] == [
        {"step_key": "outbox", "error": "SMTP down"}]


def test_the_alert_folder_is_apart_from_the_invoice_outbox(tmp_path: Path, monkeypatch):
    from q2c.alerts import alert_mail_transport
    from q2c.settings import load_settings

    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.setenv("Q2C_MAIL_CHANNEL", "eml")
    monkeypatch.delenv("Q2C_OUTBOX_DIR", raising=False)
    monkeypatch.delenv("Q2C_CONFIG", raising=False)

    transport = alert_mail_transport(load_settings())

    assert transport.outbox_dir == tmp_path / "alerts"


def test_a_redirect_is_refused_rather_than_followed(receiver):
    """Following a 302 would send the alert to an address nobody configured."""
    receiver.statuses = [302]

    with pytest.raises(AlertError, match="refused the alert .*HTTP 302"):
        post_webhook(f"{receiver.url}/hook", _failure(), sleep=lambda _: None)

    assert len(receiver.received) == 1


# --- the webhook URL's secrets and a receiver that never finishes ------------------------

# A Slack-style hook keeps its token in the path; this one has a query token with a space
# and a pipe too, which the HTTP library spells `s3cr%20et%7Cx` in its own messages.
HOOK_PATH = "/services/T0Q2C/B0Q2C/SECRETpathTOKEN"
HOOK_QUERY = "token=s3cr et|x"
LEAKS = ("SECRETpathTOKEN", "T0Q2C", "s3cr", "%20et", "%7Cx", "et|x")


def _leaks(text: str) -> list[str]:
    return [piece for piece in LEAKS if piece in text]


def test_an_unreachable_hook_names_only_scheme_host_and_port_in_logs_and_error(caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}{HOOK_PATH}?{HOOK_QUERY}"

    with caplog.at_level("INFO", logger="q2c.alerts"), pytest.raises(AlertError) as raised:
        post_webhook(url, _failure(), retry=WebhookRetry(attempts=2), sleep=lambda _: None)

    message = str(raised.value)
    assert f"http://127.0.0.1:{port}/…" in message
    assert "ConnectionError: the connection was refused or dropped" in message
    assert _leaks(message) == []
    assert caplog.messages and _leaks(" ".join(caplog.messages)) == []
    assert f"alert webhook http://127.0.0.1:{port}/… try 1 failed" in caplog.text


def test_a_posted_alert_is_logged_without_the_hooks_path(receiver, caplog):
    with caplog.at_level("INFO", logger="q2c.alerts"):
        post_webhook(f"{receiver.url}{HOOK_PATH}?token=abc", _failure(), sleep=lambda _: None)

    assert receiver.received[0].path == f"{HOOK_PATH}?token=abc"
    assert caplog.messages == [
        f"run 0f3c9a7e-run: failure alert posted to {receiver.url}/… (HTTP 204)"]


class EchoingReceiver(LoopbackServer):
    """Refuses every POST the way an Express app does: 404 `Cannot POST <the path>`."""

    methods = ("POST",)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        page = f"<pre>Cannot POST {handler.path}</pre>".encode()
        handler.send_response(404)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(page)))
        handler.end_headers()
        handler.wfile.write(page)


def test_a_refusal_that_quotes_the_url_is_reported_without_it():
    server = EchoingReceiver().start()
    try:
        with pytest.raises(AlertError) as raised:
            post_webhook(f"{server.url}{HOOK_PATH}?{HOOK_QUERY}", _failure(),
                         sleep=lambda _: None)
    finally:
        server.stop()

    message = str(raised.value)
    assert "refused the alert" in message and "HTTP 404: <pre>Cannot POST (hidden)" in message
    assert _leaks(message) == []


def test_a_refused_hook_fails_the_tick_without_its_path_or_query(
        monkeypatch, alert_env, instance, receiver):
    monkeypatch.setenv("Q2C_ALERT_WEBHOOK_URL",
                       f"{receiver.url}{HOOK_PATH}?token=s3cr%20et%7Cx")
    receiver.statuses = [401]

    _, tick = _fail_a_run(instance)

    error = tick.dagster_run_reactions[0].error
    assert error is not None and f"{receiver.url}/… refused the alert" in error.message
    assert _leaks(error.message) == []


class SlowReceiver(LoopbackServer):
    """Answers every POST slowly or endlessly; counts the bytes it got out before the
    client hung up.

    `drip_head`: a 503 whose head comes one byte per 20 ms (300 bytes, 6 s in all);
    `drip_body`: a 503 whose 300-byte body comes that way; `flood`: a 503 whose body is
    50 MiB, written as fast as the client reads.
    """

    methods = ("POST",)

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.written = 0
        self.done = threading.Event()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            if self.mode == "drip_head":
                handler.wfile.write(b"HTTP/1.1 503 Service Unavailable\r\nX-Pad: ")
                self._drip(handler, b"a" * 300)
                handler.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")
            elif self.mode == "drip_body":
                handler.wfile.write(b"HTTP/1.1 503 Service Unavailable\r\n"
                                    b"Content-Length: 300\r\n\r\n")
                self._drip(handler, b"b" * 300)
            else:
                handler.wfile.write(b"HTTP/1.1 503 Service Unavailable\r\n"
                                    b"Content-Length: %d\r\n\r\n" % (50 * 2**20))
                for _ in range(50):
                    handler.wfile.write(b"c" * 2**20)
                    self.written += 2**20
        except OSError:
            pass
        finally:
            handler.close_connection = True
            self.done.set()

    def _drip(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        for byte in data:
            handler.wfile.write(bytes([byte]))
            self.written += 1
            threading.Event().wait(0.02)


@pytest.mark.parametrize("mode", ["drip_head", "drip_body"])
def test_a_receiver_that_drips_its_answer_is_cut_at_the_deadline(mode):
    """A per-read timeout of 15 s never fires on a byte every 20 ms; the 0.3 s deadline
    of the whole try ends it long before the 300 bytes are out."""
    server = SlowReceiver(mode).start()
    try:
        with pytest.raises(AlertError) as raised:
            post_webhook(f"{server.url}/hook", _failure(),
                         retry=WebhookRetry(attempts=1, deadline=0.3), sleep=lambda _: None)
        assert server.done.wait(30)
    finally:
        server.stop()

    assert server.written < 300
    assert "(last: HTTP 503, cut at the 0.3 s deadline: " in str(raised.value)


def test_only_the_start_of_a_huge_refusal_is_read():
    """A 503 with a 50 MiB body: 64 KiB are read, then the connection is closed, so the
    receiver cannot get the rest out (the socket buffers hold a few MiB at most)."""
    server = SlowReceiver("flood").start()
    try:
        with pytest.raises(AlertError, match=r"\(last: HTTP 503: c{100}"):
            post_webhook(f"{server.url}/hook", _failure(), retry=WebhookRetry(attempts=1),
                         sleep=lambda _: None)
        assert server.done.wait(30)
    finally:
        server.stop()

    assert server.written < 50 * 2**20
