"""Stripe webhooks: real HTTP requests, signed the way Stripe signs them, to the endpoint.

Every event is built from Stripe's published example objects (`tests/stripe_signing.py`)
and posted to `make_webhook_server` (what `q2c webhooks serve` runs) on a loopback port.
The endpoint's answers, the ops store, the landing files and, for the end-to-end part, a
real `dbt build` of the payment marts are checked against values worked out by hand.
Times: T0 = 1767261600 is 2026-01-01 10:00:00 UTC; signatures carry the real clock.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from provider_servers import StripeServer
from stripe_signing import (
    Answer,
    body_of,
    deliver,
    event,
    example,
    post,
    signature_header,
)

from assets.ingest import build_raw_assets, raw_asset_key
from orchestration.resources import Q2CSettings
from q2c.cli import main
from q2c.payments.stripe_landing import land_webhook_objects
from q2c.payments.stripe_signature import (
    SecretsMissing,
    SignatureRejected,
    secrets_from_env,
    verify,
)
from q2c.payments.stripe_webhooks import make_webhook_server, serve_in_thread
from q2c.settings import ConfigError, load_settings
from q2c.sources.connectors import CursorStore, StripeConnector
from q2c.sources.connectors.rate_limit import RateLimiter
from q2c.sources.landing import load_source
from q2c.warehouse import connect

REPO = Path(__file__).resolve().parents[1]
DBT = Path(sys.executable).parent / "dbt"
SECRET = "whsec_q2cTestEndpointSecret0002"
ROLLED = "whsec_q2cTestEndpointSecret0001"  # the secret before the last roll
T0 = 1767261600  # 2026-01-01 10:00:00 UTC


@dataclass
class Endpoint:
    url: str
    store: Path

    def rows(self, sql: str, *params: object) -> list[tuple]:
        with closing(sqlite3.connect(self.store)) as conn:
            return conn.execute(sql, params).fetchall()

    def count(self, table: str) -> int:
        return self.rows(f"select count(*) from {table}")[0][0]


@contextmanager
def serving(store: Path, **options) -> Iterator[Endpoint]:
    """The endpoint on a free loopback port, with both secrets of a rolled pair."""
    server = make_webhook_server(store, [SECRET, ROLLED], **options)
    serve_in_thread(server, poll_interval=0.05)
    host, port = server.server_address[:2]
    try:
        yield Endpoint(f"http://{host}:{port}", store)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Endpoint]:
    with serving(tmp_path / "ops.sqlite") as running:
        yield running


def _charge(charge_id: str, currency: str, amount: int, created: int, **changes) -> dict:
    return example("charge", id=charge_id, currency=currency, amount=amount,
                   amount_captured=amount, created=created, captured=True, paid=True,
                   status="succeeded", livemode=True, balance_transaction=None,
                   **changes)


def _together(calls: list[Callable[[], Answer]]) -> list[Answer]:
    """Run the calls in threads released at the same moment; their answers in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[Answer | None] = [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait(timeout=30)
        answers[n] = calls[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(answer is not None for answer in answers)
    return answers  # type: ignore[return-value]


def _deliver_together(url: str, envelopes: list[dict]) -> list[Answer]:
    """Deliver the envelopes at the same moment, each attempt signed with its own t."""
    now = int(time.time())
    return _together([lambda e=e, n=n: deliver(url, e, [SECRET], timestamp=now - n)
                      for n, e in enumerate(envelopes)])


# ---------------------------------------------------------------------------------------
# Signature, tolerance and replays


def test_a_signed_event_is_stored_once_with_its_object_and_answered_200(endpoint):
    envelope = event("charge.succeeded", _charge("ch_S1", "usd", 1999, T0), "evt_S1", T0)

    answer = deliver(endpoint.url, envelope, [SECRET])

    assert answer.status == 200
    assert answer.payload["outcome"] == "applied"
    assert endpoint.rows("select event_id, event_type, object_type, object_id, outcome "
                         "from stripe_webhook_events") == [
        ("evt_S1", "charge.succeeded", "charge", "ch_S1", "applied")]
    kept = endpoint.rows("select object_type, object_id, event_id, body from stripe_objects")
    assert [row[:3] for row in kept] == [("charge", "ch_S1", "evt_S1")]
    assert json.loads(kept[0][3])["amount"] == 1999


def test_a_wrong_secret_or_a_changed_body_is_refused_400_and_nothing_is_stored(endpoint):
    envelope = event("charge.succeeded", _charge("ch_S2", "usd", 1000, T0), "evt_S2", T0)
    body = body_of(envelope)

    wrong_secret = post(endpoint.url, body, {
        "Stripe-Signature": signature_header(body, ["whsec_someoneElsesSecret"])})
    changed = body.replace(b'"amount": 1000', b'"amount": 1')
    assert changed != body
    changed_body = post(endpoint.url, changed, {
        "Stripe-Signature": signature_header(body, [SECRET])})

    for answer in (wrong_secret, changed_body):
        assert answer.status == 400
        assert "no v1 signature matches" in answer.payload["error"]
    assert endpoint.count("stripe_webhook_events") == 0
    assert endpoint.count("stripe_objects") == 0


@pytest.mark.parametrize(("header", "reason"), [
    (None, "no Stripe-Signature header"),
    ("v1=" + "0" * 64, "no single t="),
    ("t=soon,v1=" + "0" * 64, "no single t="),
    (f"t={T0}", "no v1 signature"),
])
def test_a_missing_or_malformed_signature_header_is_refused(endpoint, header, reason):
    body = body_of(event("charge.succeeded", _charge("ch_S3", "usd", 1, T0), "evt_S3", T0))

    answer = post(endpoint.url, body, {"Stripe-Signature": header} if header else {})

    assert answer.status == 400
    assert reason in answer.payload["error"]
    assert endpoint.count("stripe_webhook_events") == 0


def test_a_timestamp_beyond_the_tolerance_is_refused_either_way(endpoint):
    """The default tolerance is 300 s; signatures an hour old or ahead are refused."""
    envelope = event("charge.succeeded", _charge("ch_S4", "usd", 1, T0), "evt_S4", T0)
    now = int(time.time())

    stale = deliver(endpoint.url, envelope, [SECRET], timestamp=now - 3600)
    ahead = deliver(endpoint.url, envelope, [SECRET], timestamp=now + 3600)

    assert (stale.status, ahead.status) == (400, 400)
    assert "old, beyond the tolerance of 300 s" in stale.payload["error"]
    assert "in the future, beyond the tolerance of 300 s" in ahead.payload["error"]
    assert endpoint.count("stripe_webhook_events") == 0


def test_the_tolerance_is_configurable(tmp_path):
    """With 7200 s, a signature 3600 s old is fresh."""
    envelope = event("charge.succeeded", _charge("ch_S5", "usd", 1, T0), "evt_S5", T0)
    with serving(tmp_path / "ops.sqlite", tolerance=7200) as wide:
        answer = deliver(wide.url, envelope, [SECRET], timestamp=int(time.time()) - 3600)
        assert answer.status == 200
        assert wide.count("stripe_webhook_events") == 1


def test_the_same_signed_request_sent_again_is_refused_as_a_replay(endpoint):
    envelope = event("charge.succeeded", _charge("ch_S6", "usd", 700, T0), "evt_S6", T0)
    body = body_of(envelope)
    now = int(time.time())
    headers = {"Stripe-Signature": signature_header(body, [SECRET], now)}

    first = post(endpoint.url, body, headers)
    replay = post(endpoint.url, body, headers)
    # Stripe's own next attempt is signed anew (another t): taken as a duplicate, not refused.
    retry = deliver(endpoint.url, envelope, [SECRET], timestamp=now - 1)

    assert (first.status, replay.status, retry.status) == (200, 400, 200)
    assert "taken before" in replay.payload["error"]
    assert (first.payload["outcome"], retry.payload["outcome"]) == ("applied", "duplicate")
    assert endpoint.count("stripe_webhook_effects") == 1


def test_either_secret_of_a_rolled_pair_verifies(endpoint):
    """While a rolled secret lives on, Stripe sends one v1 per secret; q2c may hold the new
    one only, the old one only, or both."""
    old_only = event("charge.succeeded", _charge("ch_S7", "usd", 1, T0), "evt_S7", T0)
    both = event("charge.succeeded", _charge("ch_S8", "usd", 1, T0), "evt_S8", T0)
    body = body_of(both)
    header = signature_header(body, ["whsec_theNewSecretNotYetConfigured", ROLLED])

    assert deliver(endpoint.url, old_only, [ROLLED]).status == 200
    assert post(endpoint.url, body, {"Stripe-Signature": header}).status == 200
    assert endpoint.count("stripe_webhook_events") == 2


def test_a_body_that_is_no_snapshot_event_is_refused_after_its_signature(endpoint):
    thin = {"id": "evt_thin", "object": "v2.core.event", "type": "v1.charge.succeeded"}
    no_object = event("charge.succeeded", _charge("ch_S9", "usd", 1, T0), "evt_S9", T0)
    no_object["data"] = {}

    answers = [deliver(endpoint.url, thin, [SECRET]), deliver(endpoint.url, no_object, [SECRET])]

    assert [a.status for a in answers] == [400, 400]
    assert "not a Stripe event" in answers[0].payload["error"]
    assert "no data.object" in answers[1].payload["error"]
    assert endpoint.count("stripe_webhook_events") == 0


def test_only_post_to_the_stripe_path_is_taken(endpoint):
    body = body_of(event("charge.succeeded", _charge("ch_SA", "usd", 1, T0), "evt_SA", T0))
    header = {"Stripe-Signature": signature_header(body, [SECRET])}

    assert post(endpoint.url, body, header, path="/other").status == 404
    assert post(endpoint.url, b"", {}, method="GET").status == 405
    assert endpoint.count("stripe_webhook_events") == 0


# ---------------------------------------------------------------------------------------
# Once, and in any order


def test_the_same_event_delivered_at_the_same_moment_has_one_effect(endpoint):
    """Eight delivery attempts of one event, each signed with its own t, released together:
    all answered 200, one applied and seven duplicates; one event row, one object row, one
    effect."""
    envelope = event("charge.succeeded", _charge("ch_D1", "jpy", 5000, T0), "evt_D1", T0)

    answers = _deliver_together(endpoint.url, [envelope] * 8)

    assert [a.status for a in answers] == [200] * 8
    assert sorted(a.payload["outcome"] for a in answers) == ["applied"] + ["duplicate"] * 7
    assert endpoint.count("stripe_webhook_events") == 1
    assert endpoint.count("stripe_objects") == 1
    assert endpoint.rows("select event_id, object_id, change from stripe_webhook_effects") == [
        ("evt_D1", "ch_D1", "inserted")]


def test_one_signed_request_sent_twice_at_once_is_taken_once(endpoint):
    envelope = event("charge.succeeded", _charge("ch_D2", "usd", 100, T0), "evt_D2", T0)
    body = body_of(envelope)
    headers = {"Stripe-Signature": signature_header(body, [SECRET])}

    answers = _together([lambda: post(endpoint.url, body, headers)] * 2)

    assert sorted(a.status for a in answers) == [200, 400]
    assert endpoint.count("stripe_webhook_effects") == 1


def test_an_older_state_delivered_after_a_newer_one_never_overwrites_it(endpoint):
    """charge.refunded (T0+60, 345 fils refunded) arrives before charge.succeeded (T0)."""
    refunded = _charge("ch_O1", "kwd", 12345, T0, amount_refunded=345)
    succeeded = _charge("ch_O1", "kwd", 12345, T0, amount_refunded=0)

    newer = deliver(endpoint.url, event("charge.refunded", refunded, "evt_O2", T0 + 60),
                    [SECRET])
    older = deliver(endpoint.url, event("charge.succeeded", succeeded, "evt_O1", T0),
                    [SECRET])

    assert (newer.payload["outcome"], older.payload["outcome"]) == ("applied", "stale")
    kept = endpoint.rows("select event_id, body from stripe_objects")
    assert [(event_id, json.loads(body)["amount_refunded"]) for event_id, body in kept] == [
        ("evt_O2", 345)]
    assert endpoint.rows("select event_id from stripe_webhook_effects") == [("evt_O2",)]


@pytest.mark.parametrize("first", ["payment_intent.processing", "payment_intent.succeeded"])
def test_two_states_of_one_second_order_by_status(endpoint, first):
    """processing and succeeded of the same second: succeeded is kept in either order."""
    states = {
        "payment_intent.processing": example("payment_intent", id="pi_O1", status="processing",
                                             amount_received=0, livemode=True),
        "payment_intent.succeeded": example("payment_intent", id="pi_O1", status="succeeded",
                                            amount_received=1099, livemode=True),
    }
    order = [first, *(kind for kind in states if kind != first)]

    for n, kind in enumerate(order):
        assert deliver(endpoint.url, event(kind, states[kind], f"evt_P{n}", T0),
                       [SECRET]).status == 200

    (body,) = endpoint.rows("select body from stripe_objects")[0]
    assert json.loads(body)["status"] == "succeeded"


def test_an_event_of_an_unknown_object_type_is_stored_and_ignored_with_a_log_line(
        endpoint, caplog):
    """Stripe's published example event is a plan.created: q2c keeps no plans."""
    published = example("event")

    with caplog.at_level(logging.INFO, logger="q2c.payments"):
        answer = deliver(endpoint.url, published, [SECRET])

    assert (answer.status, answer.payload["outcome"]) == (200, "ignored")
    assert endpoint.rows("select event_id, object_type, outcome from stripe_webhook_events") == [
        ("evt_1Pgc76B7WZ01zgkWwyRHS12y", "plan", "ignored")]
    assert endpoint.count("stripe_objects") == 0
    assert ("stripe event evt_1Pgc76B7WZ01zgkWwyRHS12y (plan.created): carries a plan, which "
            "q2c does not keep; stored, nothing changed") in caplog.messages


# ---------------------------------------------------------------------------------------
# Beside the pulled rows


def _read(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def _pull(server: StripeServer, landing: Path, store: Path, full_refresh: bool) -> None:
    env = {"Q2C_STRIPE_API_KEY": server.token, "Q2C_STRIPE_URL": server.url}
    connector = StripeConnector.from_env(landing, CursorStore(store), env=env,
                                         limiter=RateLimiter(1000, 1000))
    connector.pull(["charge", "payment_intent"], full_refresh=full_refresh)


def test_polling_fills_gaps_and_an_object_seen_by_both_paths_is_one_row(tmp_path):
    """The pull lands charges 1-3 and payment intents 1-2 of the local Stripe API (read
    now). Webhooks bring charge 1 refunded an hour from now (newer than the pull), charge 2
    as of T0 (older), a charge the pull never saw, and a completed portal Checkout Session
    paying payment intent 1 (pulled only), whose metadata has the invoice number only."""
    landing, store = tmp_path / "landing", tmp_path / "ops.sqlite"
    later = int(time.time()) + 3600
    server = StripeServer(page_size=2).start()
    try:
        _pull(server, landing, store, full_refresh=False)
        pulled = _read(landing / "stripe" / "charge.csv")
        with serving(store) as hook:
            deliver(hook.url, event("charge.refunded", _charge(
                "ch_Q2cCHA00001", "usd", 100, T0, amount_refunded=100, refunded=True),
                "evt_G1", later), [SECRET])
            deliver(hook.url, event("charge.succeeded", _charge(
                "ch_Q2cCHA00002", "usd", 100, T0, description="an old state"),
                "evt_G2", T0), [SECRET])
            deliver(hook.url, event("charge.succeeded", _charge("ch_G3", "usd", 4200, T0),
                                    "evt_G3", T0), [SECRET])
            deliver(hook.url, event("checkout.session.completed", example(
                "checkout.session", id="cs_G1", status="complete", payment_status="paid",
                payment_intent="pi_Q2cPAY00001", client_reference_id="1001",
                metadata={"q2c_invoice_number": "INV-1001"}, livemode=True),
                "evt_G4", T0), [SECRET])

        land_webhook_objects(store, landing)
        first = _read(landing / "stripe" / "charge.csv")
        _pull(server, landing, store, full_refresh=True)
        land_webhook_objects(store, landing)
    finally:
        server.stop()

    charges = _read(landing / "stripe" / "charge.csv")
    assert sorted(pulled) == ["ch_Q2cCHA00001", "ch_Q2cCHA00002", "ch_Q2cCHA00003"]
    for landed in (first, charges):
        assert sorted(landed) == sorted([*pulled, "ch_G3"])
        assert landed["ch_Q2cCHA00001"]["amount_refunded"] == "100"
        assert landed["ch_Q2cCHA00001"]["_q2c_stripe_event_id"] == "evt_G1"
        assert landed["ch_Q2cCHA00002"]["description"] == pulled["ch_Q2cCHA00002"]["description"]
        assert landed["ch_Q2cCHA00002"]["_q2c_stripe_event_id"] == ""
        assert landed["ch_G3"]["amount"] == "4200"
    intent = _read(landing / "stripe" / "payment_intent.csv")["pi_Q2cPAY00001"]
    assert json.loads(intent["metadata"]) == {
        "q2c_invoice_number": "INV-1001", "q2c_invoice_id": "1001", "q2c_channel": "portal",
        "q2c_checkout_session_id": "cs_G1"}

    with connect(tmp_path / "warehouse.duckdb") as conn:
        loads = {load.table.name: load for load in load_source(conn, landing, "stripe", "r1")}
        ids = conn.execute("select id from raw_stripe.charge order by id").fetchall()
    assert [row[0] for row in ids] == ["ch_G3", "ch_Q2cCHA00001", "ch_Q2cCHA00002",
                                       "ch_Q2cCHA00003"]
    assert loads["charge"].rows_quarantined == 0


def test_webhook_rows_join_a_fivetran_export_in_its_own_file(endpoint, tmp_path):
    """A Fivetran export (`fivetran-stripe/charge_data.csv`, synced 09:00) is the file the
    load reads, so webhook rows go there: ch_F1 refunded at T0 (10:00) replaces its row."""
    folder = tmp_path / "landing" / "fivetran-stripe"
    folder.mkdir(parents=True)
    (folder / "charge_data.csv").write_text(
        "id,amount,amount_refunded,currency,status,_fivetran_synced\n"
        "ch_F1,700,0,usd,succeeded,2026-01-01 09:00:00\n"
        "ch_F2,800,0,usd,succeeded,2026-01-01 09:00:00\n")
    deliver(endpoint.url, event("charge.refunded", _charge(
        "ch_F1", "usd", 700, T0, amount_refunded=700), "evt_F1", T0), [SECRET])

    land_webhook_objects(endpoint.store, tmp_path / "landing")

    rows = _read(folder / "charge_data.csv")
    assert {cid: row["amount_refunded"] for cid, row in rows.items()} == {
        "ch_F1": "700", "ch_F2": "0"}
    assert not (tmp_path / "landing" / "stripe").exists()
    assert sorted(p.name for p in folder.iterdir()) == [".parts", "charge_data.csv"]


def test_the_stripe_landing_asset_pulls_then_lands_webhook_objects_then_loads(
        tmp_path, monkeypatch):
    """The nightly order: the pull reads charge 1 as of now, a webhook brought its refunded
    state of an hour from now, and the warehouse gets the refunded state, once."""
    config = tmp_path / "q2c.yaml"
    config.write_text("{}\n")
    for name in ("Q2C_LANDING_DIR", "Q2C_WAREHOUSE", "Q2C_OPS_STORE"):
        monkeypatch.delenv(name, raising=False)
    server = StripeServer(page_size=2).start()
    try:
        for name, value in {"Q2C_CONFIG": str(config), "Q2C_HOME": str(tmp_path / "home"),
                            "Q2C_SOURCES": "salesforce,quickbooks,stripe",
                            "Q2C_PULL_SOURCES": "stripe", "Q2C_STRIPE_URL": server.url,
                            "Q2C_STRIPE_API_KEY": server.token}.items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        with serving(settings.ops_store) as hook:
            refunded = _charge("ch_Q2cCHA00001", "usd", 100, T0, amount_refunded=100)
            deliver(hook.url, event("charge.refunded", refunded, "evt_A1",
                                    int(time.time()) + 3600), [SECRET])
        result = dg.materialize(build_raw_assets(("stripe",)),
                                instance=dg.DagsterInstance.ephemeral(),
                                resources={"q2c": Q2CSettings()}, raise_on_error=False)
    finally:
        server.stop()

    assert result.success
    charge = next(m for m in result.asset_materializations_for_node("land_stripe")
                  if m.asset_key == raw_asset_key("stripe", "charge"))
    assert charge.metadata["pulled_records"].data["charge"] == 3
    assert charge.metadata["webhook_rows_offered"].data == {"charge": 1}
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        rows = conn.execute("select id, amount_refunded, _q2c_stripe_event_id "
                            "from raw_stripe.charge order by id").fetchall()
    assert rows == [("ch_Q2cCHA00001", "100", "evt_A1"), ("ch_Q2cCHA00002", "0", None),
                    ("ch_Q2cCHA00003", "0", None)]


# ---------------------------------------------------------------------------------------
# End to end: events in, payment marts out

# What the portal, Stripe Checkout and the card networks send, in delivery order. The
# refund comes before its charge; the KWD charge's refunded state before its succeeded
# state; the payout's paid state before its created state; the JPY charge twice at once.
CUS_US, CUS_JP, CUS_KW = "cus_WhUs", "cus_WhJp", "cus_WhKw"


def _invoice(status: str, paid: int) -> dict:
    line = example("line_item", id="il_WhUs1", invoice="in_WhUs1", amount=2500,
                   currency="usd", quantity=1, livemode=True)
    return example("invoice", id="in_WhUs1", number="WH-0001", customer=CUS_US,
                   currency="usd", status=status, subtotal=2500, total=2500, amount_due=2500,
                   amount_paid=paid, amount_remaining=2500 - paid, created=T0,
                   due_date=T0 + 30 * 86400, livemode=True,
                   lines={"object": "list", "data": [line], "has_more": False,
                          "url": "/v1/invoices/in_WhUs1/lines"})


def _deliveries() -> list[dict | list[dict]]:
    customers = [
        event("customer.created", example("customer", id=cid, currency=cur, name=name,
                                          email=None, livemode=True, created=T0), f"evt_C{n}",
              T0)
        for n, (cid, cur, name) in enumerate([(CUS_US, "usd", "Acme Corp"),
                                              (CUS_JP, "jpy", "Kabushiki KK"),
                                              (CUS_KW, "kwd", "Gulf Trading")])
    ]
    session = example("checkout.session", id="cs_WhUs1", status="complete",
                      payment_status="paid", mode="payment", payment_intent="pi_WhUs1",
                      client_reference_id="in_WhUs1", customer=CUS_US, currency="usd",
                      amount_total=2500, amount_subtotal=2500, created=T0 + 60, livemode=True,
                      metadata={"q2c_invoice_number": "WH-0001", "q2c_channel": "portal"})
    intent = {status: example("payment_intent", id="pi_WhUs1", status=status, amount=2500,
                              amount_received=received, currency="usd", customer=CUS_US,
                              metadata={}, created=T0 + 60, livemode=True)
              for status, received in (("succeeded", 2500), ("processing", 0))}
    jpy = event("charge.succeeded", _charge("ch_WhJp1", "jpy", 5000, T0 + 400,
                                            customer=CUS_JP, metadata={}), "evt_J1", T0 + 400)
    payout = {status: example("payout", id="po_WhUs1", amount=1100, currency="usd",
                              status=status, created=T0 + 700, arrival_date=T0 + 86400,
                              balance_transaction=None, livemode=True)
              for status in ("paid", "pending")}
    return [
        *customers,
        event("invoice.finalized", _invoice("open", 0), "evt_I1", T0),
        event("refund.created", example(
            "refund", id="re_WhUs1", charge="ch_WhUs1", payment_intent="pi_WhUs1",
            amount=500, currency="usd", status="succeeded", created=T0 + 300),
            "evt_R1", T0 + 300),
        event("checkout.session.completed", session, "evt_K1", T0 + 90),
        event("payment_intent.succeeded", intent["succeeded"], "evt_P2", T0 + 88),
        event("payment_intent.processing", intent["processing"], "evt_P1", T0 + 88),
        event("charge.succeeded", _charge("ch_WhUs1", "usd", 2500, T0 + 88,
                                          payment_intent="pi_WhUs1", customer=CUS_US,
                                          metadata={}), "evt_U1", T0 + 88),
        event("invoice.paid", _invoice("paid", 2500), "evt_I2", T0 + 120),
        [jpy, jpy],
        event("charge.refunded", _charge("ch_WhKw1", "kwd", 12345, T0 + 500, customer=CUS_KW,
                                         metadata={}, amount_refunded=345), "evt_W2", T0 + 600),
        event("charge.succeeded", _charge("ch_WhKw1", "kwd", 12345, T0 + 500, customer=CUS_KW,
                                          metadata={}, amount_refunded=0), "evt_W1", T0 + 500),
        event("payout.paid", payout["paid"], "evt_O2", T0 + 800),
        event("payout.created", payout["pending"], "evt_O1", T0 + 700),
        example("event"),
    ]


MARTS = ("+fct_payments", "+fct_payment_allocations", "+fct_payouts")
# Stripe as the only ERP-side source, so the build reads nothing but what came by webhook.
STRIPE_ONLY = {"q2c_stripe_enabled": True, "q2c_quickbooks_enabled": False,
               "q2c_salesforce_enabled": False}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Deliver, land, load and `dbt build` the payment marts once."""
    tmp = tmp_path_factory.mktemp("stripe_webhooks")
    store, landing, warehouse = tmp / "ops.sqlite", tmp / "landing", tmp / "warehouse.duckdb"
    outcomes: dict[str, list[str]] = {}
    with serving(store) as hook:
        for item in _deliveries():
            envelopes = item if isinstance(item, list) else [item]
            answers = _deliver_together(hook.url, envelopes)
            assert all(a.status == 200 for a in answers), answers
            outcomes[envelopes[0]["id"]] = sorted(a.payload["outcome"] for a in answers)

    land_webhook_objects(store, landing)
    with connect(warehouse) as conn:
        load_source(conn, landing, "stripe", "run-webhooks")
    command = [
        str(DBT), "build", "--project-dir", str(REPO / "dbt_project"),
        "--profiles-dir", str(REPO / "dbt_project"),
        "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs"),
        "--vars", json.dumps(STRIPE_ONLY), "--indirect-selection", "cautious",
        "--select", *MARTS,
    ]
    env = os.environ | {"Q2C_WAREHOUSE": str(warehouse), "Q2C_HOME": str(tmp),
                        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return {"warehouse": warehouse, "store": store, "outcomes": outcomes}


def _query(built: dict, sql: str) -> list[tuple]:
    with duckdb.connect(str(built["warehouse"]), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _payments(built: dict) -> dict[str, tuple]:
    rows = _query(built, "select payment_id, currency, amount, unapplied_amount, "
                         "payment_channel from core.fct_payments "
                         "where source_system = 'stripe'")
    return {row[0]: row[1:] for row in rows}


def test_each_webhook_payment_is_one_row_of_fct_payments(built):
    """Three succeeded charges came; the JPY one twice at once, the KWD one out of order."""
    rows = _query(built, "select payment_id, count(*) from core.fct_payments "
                         "where source_system = 'stripe' group by payment_id order by 1")
    assert rows == [("ch_WhJp1", 1), ("ch_WhKw1", 1), ("ch_WhUs1", 1)]
    assert built["outcomes"]["evt_J1"] == ["applied", "duplicate"]
    with closing(sqlite3.connect(built["store"])) as conn:
        assert conn.execute("select count(*) from stripe_webhook_effects "
                            "where event_id = 'evt_J1'").fetchone() == (1,)


def test_a_jpy_charge_of_5000_is_5000_yen(built):
    """JPY has no minor unit (ISO 4217 exponent 0): 5000 x 10^0 = 5000, never 50.00."""
    assert _payments(built)["ch_WhJp1"][:3] == ("JPY", Decimal("5000"), Decimal("5000"))


def test_a_kwd_charge_of_12345_fils_is_12_345_dinar(built):
    """KWD has 3 decimals: 12345 x 10^-3 = 12.345, never 123.45; nothing names an invoice,
    so all of it is unapplied."""
    assert _payments(built)["ch_WhKw1"][:3] == ("KWD", Decimal("12.345"), Decimal("12.345"))


def test_the_newest_state_of_an_out_of_order_charge_is_landed(built):
    """The refunded state (T0+600) came before the succeeded one (T0+500): 345 fils
    refunded = 0.345 KWD."""
    assert built["outcomes"]["evt_W1"] == ["stale"]
    assert _query(built, "select amount_refunded from staging.stg_stripe__charges "
                         "where charge_id = 'ch_WhKw1'") == [(Decimal("0.345"),)]


def test_a_completed_portal_checkout_pays_its_invoice(built):
    """Checkout did not copy the session's metadata to pi_WhUs1; the landing did, so the
    USD charge of 2500 cents (25.00) is a portal payment of WH-0001 with nothing
    unapplied, and its allocation pays Stripe invoice in_WhUs1."""
    assert _payments(built)["ch_WhUs1"] == ("USD", Decimal("25"), Decimal("0"), "portal")
    assert _query(built, "select invoice_id, allocation_type, amount "
                         "from core.fct_payment_allocations where payment_id = 'ch_WhUs1' "
                         "and allocation_type = 'payment'") == [
        ("in_WhUs1", "payment", Decimal("25"))]


def test_a_refund_that_arrived_before_its_charge_counts(built):
    """re_WhUs1 (500 cents) was delivered before ch_WhUs1 existed: -5.00 against the
    invoice the charge paid."""
    assert built["outcomes"]["evt_R1"] == ["applied"]
    assert _query(built, "select invoice_id, amount from core.fct_payment_allocations "
                         "where payment_id = 'ch_WhUs1' and allocation_type = 'refund'") == [
        ("in_WhUs1", Decimal("-5"))]


def test_a_payout_event_reaches_fct_payouts_in_its_newest_state(built):
    """payout.paid (T0+800) before payout.created (T0+700): 1100 cents = 11.00, paid."""
    assert built["outcomes"]["evt_O1"] == ["stale"]
    assert _query(built, "select payout_id, currency, amount, status "
                         "from core.fct_payouts") == [
        ("po_WhUs1", "USD", Decimal("11"), "paid")]


def test_an_unknown_event_in_the_stream_changed_no_table(built):
    assert built["outcomes"]["evt_1Pgc76B7WZ01zgkWwyRHS12y"] == ["ignored"]


# ---------------------------------------------------------------------------------------
# The command and its settings


def test_q2c_webhooks_serve_takes_events_and_land_writes_them(tmp_path):
    env = os.environ | {"Q2C_HOME": str(tmp_path), "Q2C_STRIPE_WEBHOOK_SECRETS":
                        f" {SECRET} , {ROLLED}", "PYTHONUNBUFFERED": "1"}
    env.pop("Q2C_OPS_STORE", None)
    env.pop("Q2C_LANDING_DIR", None)
    q2c = str(Path(sys.executable).parent / "q2c")
    serve = subprocess.Popen([q2c, "webhooks", "serve", "--port", "0"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = serve.stdout.readline()
        url = banner.split(" on ", 1)[1].split("/stripe", 1)[0]
        envelope = event("charge.succeeded", _charge("ch_CLI1", "usd", 1234, T0),
                         "evt_CLI1", T0)
        answer = deliver(url, envelope, [ROLLED])
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    landed = subprocess.run([q2c, "webhooks", "land"], env=env, capture_output=True,
                            text=True, check=False)

    assert "2 signing secret(s), tolerance 300 s" in banner
    assert (answer.status, answer.payload["outcome"]) == (200, "applied")
    assert landed.returncode == 0, landed.stderr
    assert "charge: 1 webhook rows offered" in landed.stdout
    assert _read(tmp_path / "landing" / "stripe" / "charge.csv")["ch_CLI1"]["amount"] == "1234"


def test_serve_stops_on_sigterm_even_when_started_with_it_ignored(tmp_path):
    env = os.environ | {"Q2C_HOME": str(tmp_path), "Q2C_STRIPE_WEBHOOK_SECRETS": SECRET}
    q2c = str(Path(sys.executable).parent / "q2c")

    def ignore_sigterm() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    serve = subprocess.Popen([q2c, "webhooks", "serve", "--port", "0"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=ignore_sigterm)
    try:
        assert "Taking Stripe events on http://127.0.0.1:" in serve.stdout.readline()
        serve.terminate()
        code = serve.wait(timeout=30)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()

    assert code == 0


def test_serve_refuses_to_start_without_a_signing_secret(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.delenv("Q2C_STRIPE_WEBHOOK_SECRETS", raising=False)
    assert main(["webhooks", "serve", "--port", "0"]) == 2
    assert "Q2C_STRIPE_WEBHOOK_SECRETS is not set" in capsys.readouterr().err

    monkeypatch.setenv("Q2C_STRIPE_WEBHOOK_SECRETS", "sk_test_notASigningSecret")
    assert main(["webhooks", "serve", "--port", "0"]) == 2
    assert "do not start with whsec_" in capsys.readouterr().err


def test_the_tolerance_setting_must_be_positive_seconds(monkeypatch):
    monkeypatch.setenv("Q2C_STRIPE_WEBHOOK_TOLERANCE", "600")
    assert load_settings().stripe_webhook_tolerance == 600
    monkeypatch.setenv("Q2C_STRIPE_WEBHOOK_TOLERANCE", "0")
    with pytest.raises(ConfigError, match="Q2C_STRIPE_WEBHOOK_TOLERANCE"):
        load_settings()


# ---------------------------------------------------------------------------------------
# Odd headers and bodies are answered 400, never a dropped connection


@pytest.mark.parametrize(("header", "reason"), [
    # "²" is a digit to str.isdigit() but not to int(); http.client sends it as latin-1.
    ("t=\u00b2,v1=" + "0" * 64, "no single t="),
    (f"t={T0},v1=\u00e9", "not 64 hex digits"),
    (f"t={T0},v1=" + "0" * 63 + "g", "not 64 hex digits"),
])
def test_a_signature_header_with_odd_characters_is_answered_400(endpoint, header, reason):
    body = body_of(event("charge.succeeded", _charge("ch_H1", "usd", 1, T0), "evt_H1", T0))

    answer = post(endpoint.url, body, {"Stripe-Signature": header})

    assert answer.status == 400 and reason in answer.payload["error"]
    with pytest.raises(SignatureRejected, match=reason):
        verify(body, header, [SECRET], time.time())


def test_an_unexpected_error_while_verifying_is_answered_400_with_a_reason(tmp_path):
    """A stray byte in the secret's environment variable reaches Python as a lone
    surrogate, which cannot be encoded: the request is answered, the server goes on."""
    envelope = event("charge.succeeded", _charge("ch_H2", "usd", 1, T0), "evt_H2", T0)
    server = make_webhook_server(tmp_path / "ops.sqlite", ["whsec_bad\udcff"])
    serve_in_thread(server, poll_interval=0.05)
    host, port = server.server_address[:2]
    try:
        answers = [deliver(f"http://{host}:{port}", envelope, [SECRET]) for _ in range(2)]
    finally:
        server.shutdown()
        server.server_close()

    assert [a.status for a in answers] == [400, 400]
    assert "could not be checked (UnicodeEncodeError)" in answers[0].payload["error"]
    with pytest.raises(SecretsMissing, match="outside ASCII"):
        secrets_from_env({"Q2C_STRIPE_WEBHOOK_SECRETS": "whsec_bad\udcff"})


def _huge_number(envelope: dict) -> bytes:
    """The body with a 5000-digit amount: JSON, but beyond Python's int parsing limit."""
    body = body_of(envelope)
    assert b'"amount": 7,' in body
    return body.replace(b'"amount": 7,', b'"amount": ' + b"9" * 5000 + b",", 1)


@pytest.mark.parametrize(("change", "field"), [
    ({"created": 10**20}, "created"),
    ({"id": "\ud800"}, "id"),
    ({"id": "evt bad id"}, "id"),
    ({"api_version": ["2024-06-20"]}, "api_version"),
    ({"refunds": {"object": "list", "data": 7}}, "data.object.refunds.data"),
    ({"refunds": {"object": "list", "data": [7]}}, "data.object.refunds.data[0]"),
    ({"amount_refunded": 10**20}, "data.object.amount_refunded"),
    ({"amount_refunded": "7"}, "data.object.amount_refunded"),
    ({"huge_number": True}, "body"),
])
def test_a_signed_but_malformed_event_is_refused_400_with_its_field_and_quarantined(
        endpoint, change, field):
    """Each was a 500 (or a dropped connection) before; 10**20 minor units is 21 digits,
    which would also sort below 10**19 in the version text padded to 20."""
    charge = _charge("ch_M1", "usd", 7, T0)
    envelope = event("charge.refunded", charge, "evt_M1", T0)
    for name, value in change.items():
        if name in ("created", "id", "api_version"):
            envelope[name] = value
        elif name != "huge_number":
            charge[name] = value
    body = _huge_number(envelope) if "huge_number" in change else body_of(envelope)
    now = int(time.time())

    first = post(endpoint.url, body, {"Stripe-Signature": signature_header(body, [SECRET],
                                                                           now)})
    again = post(endpoint.url, body, {"Stripe-Signature": signature_header(body, [SECRET],
                                                                           now - 1)})

    assert (first.status, again.status) == (400, 400)
    assert first.payload["field"] == field
    assert (f"`{field}`" if field != "body" else "JSON q2c can read") in first.payload["error"]
    assert endpoint.count("stripe_webhook_events") == 0
    assert endpoint.count("stripe_objects") == 0
    assert endpoint.rows("select field, deliveries, body from stripe_webhook_quarantine") == [
        (field, 2, body)]


def test_amounts_of_18_digits_and_the_last_second_of_9999_are_taken(endpoint):
    """The limits themselves pass: 999 999 999 999 999 999 cents, created 253402300799."""
    largest = 10**18 - 1
    envelope = event("charge.succeeded", _charge("ch_M2", "usd", largest, T0,
                                                 amount_refunded=largest),
                     "evt_M2", 253402300799)

    answer = deliver(endpoint.url, envelope, [SECRET])

    assert (answer.status, answer.payload["outcome"]) == (200, "applied")
    assert endpoint.count("stripe_webhook_quarantine") == 0


# ---------------------------------------------------------------------------------------
# Slow clients, busy endpoint, other methods


def _drip(url: str, head: bytes, drip: bytes) -> tuple[int, bool]:
    """Send `head`, then `drip` a byte every 20 ms; stop when the server hangs up.
    Returns the bytes dripped and whether the server hung up before the last one."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        for sent, byte in enumerate(drip):
            readable, _, _ = select.select([sock], [], [], 0.02)
            try:
                if readable and not sock.recv(1024):
                    return sent, True
                sock.sendall(bytes([byte]))
            except OSError:
                return sent, True
        return len(drip), False


@pytest.mark.parametrize("part", ["head", "body"])
def test_a_request_that_drips_in_is_dropped_at_its_deadline(tmp_path, part):
    """A byte every 20 ms never trips the 10 s read timeout; the 0.3 s deadline for the
    whole request cuts it long before the 200 bytes are in, and nothing is stored."""
    if part == "head":
        head, drip = b"POST /stripe HTTP/1.1\r\nX-Pad: ", b"a" * 200
    else:
        head = (b"POST /stripe HTTP/1.1\r\nContent-Type: application/json\r\n"
                b"Stripe-Signature: t=1,v1=" + b"0" * 64 + b"\r\nContent-Length: 200\r\n\r\n")
        drip = b"{" + b" " * 199
    with serving(tmp_path / "ops.sqlite", request_deadline=0.3) as slow:
        sent, hung_up = _drip(slow.url, head, drip)
        after = deliver(slow.url, event("charge.succeeded", _charge("ch_T1", "usd", 1, T0),
                                        "evt_T1", T0), [SECRET])

    assert hung_up and sent < 200
    assert after.status == 200
    assert slow.count("stripe_webhook_quarantine") == 0


def test_a_full_endpoint_answers_503_with_retry_after_and_takes_the_next_one(tmp_path):
    """With 2 handlers, two clients that sent half a request hold both; the third request
    is answered 503 at once. Once they hang up, a delivery is taken again."""
    envelope = event("charge.succeeded", _charge("ch_B1", "usd", 1, T0), "evt_B1", T0)
    with serving(tmp_path / "ops.sqlite", max_handlers=2) as busy:
        host, port = busy.url.removeprefix("http://").split(":")
        holders = [socket.create_connection((host, int(port)), timeout=30) for _ in range(2)]
        for holder in holders:
            holder.sendall(b"POST /stripe HTTP/1.1\r\n")
        refused = deliver(busy.url, envelope, [SECRET])
        for holder in holders:
            holder.close()
        answers = []
        while len(answers) < 200 and (not answers or answers[-1].status == 503):
            time.sleep(0.05 if answers else 0)
            answers.append(deliver(busy.url, envelope, [SECRET],
                                   timestamp=int(time.time()) - len(answers) - 1))

    assert refused.status == 503 and refused.headers["Retry-After"] == "5"
    assert "busy" in refused.payload["error"]
    assert answers[-1].status == 200 and answers[-1].payload["outcome"] == "applied"
    assert busy.count("stripe_webhook_events") == 1


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_every_other_method_is_answered_405_with_allow_post(endpoint, method):
    answer = post(endpoint.url, b"", {}, method=method)

    assert (answer.status, answer.headers["Allow"]) == (405, "POST")
    assert answer.payload == ({} if method == "HEAD" else {
        "error": "Stripe events are taken by POST /stripe"})
