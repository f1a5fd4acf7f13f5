"""Stripe webhook events in the operational store: each event once, each object's newest state.

Stripe delivers at least once, in no particular order, and retries a failed delivery for
days, so the same event can arrive twice at the same moment and an old state of a charge
can arrive after a newer one. Every verified event is taken in one write transaction of the
ops store (`BEGIN IMMEDIATE`, so two deliveries of one event take turns):

- `stripe_webhook_events` keeps each event id once, with its raw body and what came of it
  (`applied`, `stale`: every object it carries is already known in a newer state,
  `ignored`: q2c keeps no object of that type). A second delivery finds the id and changes
  nothing.
- `stripe_objects` keeps the newest state of each object an event carried, with its version:
  the event's `created` second, then how far the object's status has come
  (`STATUS_RANK`, so `processing` and `succeeded` of one second order themselves), then the
  amounts that only grow (refunded, captured, received, paid). An older state never
  replaces a newer one; on an exact tie the state already kept stays.
- `stripe_webhook_effects` says which event changed which object: one row per change.
- `stripe_webhook_deliveries` keeps a key of each signed request (its `t` and body) while
  its timestamp is within the tolerance, so the same signed request sent again is refused
  as a replay. Stripe signs every delivery attempt anew, so its own retries pass.
- `stripe_webhook_quarantine` keeps each signed body that is no event q2c can take (not
  JSON, a field of the wrong type or beyond its range), once per body with the field at
  fault and how often it came: it is refused, and nothing Stripe sent is lost.

The objects reach the raw Stripe tables through `q2c.payments.stripe_landing`, beside the
pulled ones. Objects are never fetched from the API here: the pull connector fills gaps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from q2c import opsdb
from q2c.sources.connectors.stripe import LISTS

log = logging.getLogger(__name__)

SCHEMA = """
create table if not exists stripe_webhook_events (
    event_id text primary key,
    event_type text not null,
    object_type text,
    object_id text,
    event_created integer not null,
    livemode integer,
    api_version text,
    received_at text not null,
    outcome text not null,
    detail text not null,
    body text not null
);
create table if not exists stripe_objects (
    object_type text not null,
    object_id text not null,
    version text not null,
    event_id text not null references stripe_webhook_events (event_id),
    event_type text not null,
    event_created integer not null,
    livemode integer,
    deleted integer not null default 0,
    body text not null,
    updated_at text not null,
    primary key (object_type, object_id)
);
create table if not exists stripe_webhook_effects (
    event_id text not null references stripe_webhook_events (event_id),
    object_type text not null,
    object_id text not null,
    change text not null,
    version text not null,
    applied_at text not null,
    primary key (event_id, object_type, object_id)
);
create table if not exists stripe_webhook_deliveries (
    replay_key text primary key,
    signed_at integer not null,
    event_id text not null
);
create index if not exists stripe_webhook_deliveries_signed_at
    on stripe_webhook_deliveries (signed_at);
create table if not exists stripe_webhook_quarantine (
    body_sha256 text primary key,
    event_id text,
    field text not null,
    reason text not null,
    first_seen_at text not null,
    last_seen_at text not null,
    deliveries integer not null,
    body blob not null
);
"""

CHECKOUT_SESSION = "checkout.session"
# Objects kept: those with a raw Stripe table, and Checkout Sessions, whose q2c metadata
# tells which invoice a portal payment settles.
KEPT_TYPES = frozenset(LISTS) | {CHECKOUT_SESSION}
# How far a status has come in its object's life (charge, refund, payment intent, invoice,
# payout, dispute, credit note, Checkout Session); an unknown status ranks 0.
STATUS_RANK = {
    "draft": 0, "requires_payment_method": 0, "requires_confirmation": 0,
    "requires_action": 0,
    "pending": 1, "processing": 1, "requires_capture": 1, "open": 1, "needs_response": 1,
    "warning_needs_response": 1, "issued": 1,
    "in_transit": 2, "under_review": 2, "warning_under_review": 2,
    "succeeded": 3, "failed": 3, "canceled": 3, "paid": 3, "void": 3, "uncollectible": 3,
    "won": 3, "lost": 3, "warning_closed": 3, "charge_refunded": 3, "complete": 3,
    "expired": 3,
}
DELETED_RANK = 9
# Amounts that only grow while an object lives, so a larger one is the later state.
GROWING_AMOUNTS = ("amount_refunded", "amount_captured", "amount_received", "amount_paid")
# Amounts q2c reads to order states, checked to be whole numbers of at most 18 digits: the
# version text pads them to 20, and a bigint holds them.
CHECKED_AMOUNTS = ("amount", *GROWING_AMOUNTS)
MAX_AMOUNT = 10**18 - 1
# `created` from the epoch to 9999-12-31 23:59:59 UTC: the 12 digits the version text pads.
MAX_CREATED = 253402300799
# Ids, types and versions Stripe sends are short printable ASCII (evt_1Pgc76B7WZ01zgkWw...).
_WORD = re.compile(r"[\x21-\x7e]{1,255}")


class EventRejected(ValueError):
    """A verified body that is not a Stripe event q2c can take; the message says why.

    `field` names the part at fault (`body`, `created`, `data.object.refunds.data`, ...);
    `event_id` is the event's id when it had a usable one.
    """

    def __init__(self, message: str, field: str = "body", event_id: str | None = None):
        super().__init__(message)
        self.field = field
        self.event_id = event_id


class ReplayedRequest(ValueError):
    """The same signed request was taken before: a copy, not a Stripe delivery attempt."""


@dataclass(frozen=True)
class EventOutcome:
    """What came of one delivery: `applied`, `stale`, `ignored` or `duplicate` (the event
    was taken before and nothing changed). `changed` names the objects it changed."""

    event_id: str
    event_type: str
    outcome: str
    detail: str
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class CarriedObject:
    """One object an event carries: its data.object, or a refund embedded in a charge."""

    object_type: str
    object_id: str
    body: Mapping[str, Any]
    version: str
    deleted: bool


def ensure_schema(conn: sqlite3.Connection) -> None:
    opsdb.ensure_schema(conn, SCHEMA)


def parse_event(body: bytes) -> dict[str, Any]:
    """The event in a verified body, checked for the fields q2c relies on.

    Every field q2c stores or orders by is checked for its type and range here, so a
    malformed event is refused with the field named instead of failing the store.

    Raises:
        EventRejected: When the body is not JSON or not a snapshot event with an id, a type,
            a created time and a data.object, or one of those (or an amount, or a charge's
            embedded refunds) is of the wrong type or out of range.
    """
    try:
        event = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EventRejected(f"the body is not UTF-8 JSON q2c can read ({exc})") from exc
    if not isinstance(event, dict) or event.get("object") != "event":
        raise EventRejected(
            "the body is not a Stripe event (object 'event'); a thin event destination is "
            "not supported, create a webhook endpoint that sends snapshot events", "object"
        )
    for name in ("id", "type"):
        if event.get(name) is None or (isinstance(event[name], str) and not event[name].strip()):
            raise EventRejected(f"the event has no `{name}`", name)
        _check_word(event[name], name, "the event's", None)
    event_id = event["id"]
    created = event.get("created")
    if isinstance(created, bool) or not isinstance(created, int) or not (
            0 <= created <= MAX_CREATED):
        raise EventRejected(f"event {event_id}: `created` is not unix seconds between 0 and "
                            f"{MAX_CREATED} (9999-12-31)", "created", event_id)
    if event.get("api_version") is not None:
        _check_word(event["api_version"], "api_version", f"event {event_id}:", event_id)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict) or not isinstance(obj.get("object"), str):
        raise EventRejected(f"event {event_id}: no data.object with its `object` type",
                            "data.object", event_id)
    _check_object(obj, "data.object", event_id, needs_id=obj["object"] in KEPT_TYPES)
    if obj["object"] == "charge":
        _check_refunds(obj.get("refunds"), event_id)
    return event


def _check_word(value: object, field: str, owner: str, event_id: str | None) -> None:
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise EventRejected(f"{owner} `{field}` is not 1 to 255 printable ASCII characters "
                            "without spaces, as Stripe writes ids and names", field, event_id)


def _check_object(obj: Mapping[str, Any], where: str, event_id: str, needs_id: bool) -> None:
    """The object's type, id and amounts, as `_apply` stores and orders them."""
    owner = f"event {event_id}:"
    _check_word(obj.get("object"), f"{where}.object", owner, event_id)
    if obj.get("id") is None and needs_id:
        raise EventRejected(f"event {event_id}: its {obj['object']} has no `id`",
                            f"{where}.id", event_id)
    if obj.get("id") is not None:
        _check_word(obj["id"], f"{where}.id", owner, event_id)
    for name in CHECKED_AMOUNTS:
        value = obj.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventRejected(f"event {event_id}: `{where}.{name}` is not a whole number "
                                "of the currency's smallest unit", f"{where}.{name}", event_id)
        if abs(value) > MAX_AMOUNT:
            raise EventRejected(f"event {event_id}: `{where}.{name}` has more than 18 digits, "
                                "beyond any amount q2c takes", f"{where}.{name}", event_id)


def _check_refunds(refunds: object, event_id: str) -> None:
    """A charge's embedded refund list: absent, or a list object whose `data` is a list of
    objects."""
    if refunds is None:
        return
    if not isinstance(refunds, dict):
        raise EventRejected(f"event {event_id}: `data.object.refunds` is not a list object",
                            "data.object.refunds", event_id)
    listed = refunds.get("data")
    if listed is None:
        return
    if not isinstance(listed, list):
        raise EventRejected(f"event {event_id}: `data.object.refunds.data` is not a list",
                            "data.object.refunds.data", event_id)
    for n, refund in enumerate(listed):
        where = f"data.object.refunds.data[{n}]"
        if not isinstance(refund, dict):
            raise EventRejected(f"event {event_id}: `{where}` is not an object", where,
                                event_id)
        if refund.get("object") == "refund":
            _check_object(refund, where, event_id, needs_id=False)


def quarantine_event(conn: sqlite3.Connection, body: bytes, rejected: EventRejected,
                     now: dt.datetime) -> int:
    """Keep a verified body that was refused, once per body; return how often it came.

    Stripe retries a refused delivery, signed anew each time, so the row counts the
    deliveries of the same body instead of piling up copies.
    """
    stamp = now.astimezone(dt.UTC).isoformat(timespec="seconds")
    digest = hashlib.sha256(body).hexdigest()
    with opsdb.transaction(conn):
        conn.execute(
            "insert into stripe_webhook_quarantine values (?, ?, ?, ?, ?, ?, 1, ?) "
            "on conflict (body_sha256) do update set deliveries = deliveries + 1, "
            "last_seen_at = excluded.last_seen_at, field = excluded.field, "
            "reason = excluded.reason",
            (digest, rejected.event_id, rejected.field, str(rejected), stamp, stamp, body),
        )
        (deliveries,) = conn.execute(
            "select deliveries from stripe_webhook_quarantine where body_sha256 = ?",
            (digest,)).fetchone()
    return int(deliveries)


def version_of(event_created: int, obj: Mapping[str, Any], deleted: bool) -> str:
    """A text that sorts as the object's states do (see the module's docstring)."""
    rank = DELETED_RANK if deleted else STATUS_RANK.get(str(obj.get("status") or ""), 0)
    amounts = []
    for name in GROWING_AMOUNTS:
        value = obj.get(name)
        number = value if isinstance(value, int) and not isinstance(value, bool) else 0
        amounts.append(f"{max(number, 0):020d}")
    return ".".join([f"{event_created:012d}", str(rank), *amounts])


def carried_objects(event: Mapping[str, Any]) -> Iterator[CarriedObject]:
    """The kept objects of an event: data.object and the refunds a charge embeds."""
    obj = event["data"]["object"]
    deleted = event["type"].endswith(".deleted") or bool(obj.get("deleted"))
    if obj["object"] not in KEPT_TYPES:
        return
    created = int(event["created"])
    yield CarriedObject(obj["object"], obj["id"], obj, version_of(created, obj, deleted),
                        deleted)
    refunds = obj.get("refunds") if obj["object"] == "charge" else None
    listed = refunds.get("data") if isinstance(refunds, dict) else None
    for refund in listed or []:
        if isinstance(refund, dict) and refund.get("object") == "refund" and refund.get("id"):
            yield CarriedObject("refund", refund["id"], refund,
                                version_of(created, refund, False), False)


def record_event(
    conn: sqlite3.Connection, event: Mapping[str, Any], body: bytes, replay_key: str,
    signed_at: int, now: dt.datetime, tolerance: int,
) -> EventOutcome:
    """Take one verified event: its row, its effect and its replay key in one transaction.

    Raises:
        ReplayedRequest: When this signed request (same `t`, same body) was taken before.
    """
    event_id, event_type = event["id"], event["type"]
    stamp = now.astimezone(dt.UTC).isoformat(timespec="seconds")
    with opsdb.transaction(conn):
        conn.execute("delete from stripe_webhook_deliveries where signed_at < ?",
                     (int(now.timestamp()) - tolerance,))
        try:
            conn.execute("insert into stripe_webhook_deliveries values (?, ?, ?)",
                         (replay_key, signed_at, event_id))
        except sqlite3.IntegrityError as exc:
            raise ReplayedRequest(
                f"this signed request (t={signed_at}) for event {event_id} was taken "
                "before; Stripe signs every delivery attempt anew, so this is a copy"
            ) from exc
        if conn.execute("select 1 from stripe_webhook_events where event_id = ?",
                        (event_id,)).fetchone():
            return EventOutcome(event_id, event_type, "duplicate",
                                "taken before; nothing changed")
        return _apply(conn, event, body, stamp)


def _apply(conn: sqlite3.Connection, event: Mapping[str, Any], body: bytes,
           stamp: str) -> EventOutcome:
    obj = event["data"]["object"]
    objects = list(carried_objects(event))
    newer = [item for item in objects if _is_newer(conn, item)]
    if not objects:
        outcome, detail = "ignored", (
            f"carries a {obj['object']}, which q2c does not keep; stored, nothing changed")
    elif newer:
        outcome = "applied"
        detail = "newest state of " + ", ".join(_name(i) for i in newer)
    else:
        outcome = "stale"
        detail = "an older state of " + ", ".join(_name(i) for i in objects) + " than kept"
    _insert_event(conn, event, body, stamp, outcome, detail)
    for item in newer:
        _keep_object(conn, event, item, stamp)
    log.info("stripe event %s (%s): %s", event["id"], event["type"], detail)
    return EventOutcome(event["id"], event["type"], outcome, detail,
                        tuple(_name(i) for i in newer))


def _name(item: CarriedObject) -> str:
    return f"{item.object_type} {item.object_id}"


def _is_newer(conn: sqlite3.Connection, item: CarriedObject) -> bool:
    row = conn.execute(
        "select version from stripe_objects where object_type = ? and object_id = ?",
        (item.object_type, item.object_id),
    ).fetchone()
    return row is None or item.version > row["version"]


def _insert_event(conn: sqlite3.Connection, event: Mapping[str, Any], body: bytes,
                  stamp: str, outcome: str, detail: str) -> None:
    obj = event["data"]["object"]
    livemode = event.get("livemode")
    conn.execute(
        "insert into stripe_webhook_events values (?,?,?,?,?,?,?,?,?,?,?)",
        (event["id"], event["type"], obj.get("object"), _text(obj.get("id")),
         int(event["created"]), None if livemode is None else int(bool(livemode)),
         _text(event.get("api_version")), stamp, outcome, detail,
         body.decode("utf-8")),
    )


def _keep_object(conn: sqlite3.Connection, event: Mapping[str, Any], item: CarriedObject,
                 stamp: str) -> None:
    known = conn.execute(
        "select 1 from stripe_objects where object_type = ? and object_id = ?",
        (item.object_type, item.object_id),
    ).fetchone()
    livemode = item.body.get("livemode", event.get("livemode"))
    conn.execute(
        "insert into stripe_objects values (?,?,?,?,?,?,?,?,?,?) "
        "on conflict (object_type, object_id) do update set version = excluded.version, "
        "event_id = excluded.event_id, event_type = excluded.event_type, "
        "event_created = excluded.event_created, livemode = excluded.livemode, "
        "deleted = excluded.deleted, body = excluded.body, updated_at = excluded.updated_at",
        (item.object_type, item.object_id, item.version, event["id"], event["type"],
         int(event["created"]), None if livemode is None else int(bool(livemode)),
         int(item.deleted), json.dumps(item.body, separators=(",", ":")), stamp),
    )
    conn.execute(
        "insert into stripe_webhook_effects values (?,?,?,?,?,?)",
        (event["id"], item.object_type, item.object_id,
         "updated" if known else "inserted", item.version, stamp),
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class KeptObject:
    """The newest state of one object, as `stripe_landing` lands it."""

    object_type: str
    object_id: str
    event_id: str
    event_created: int
    deleted: bool
    body: dict[str, Any]


def kept_objects(conn: sqlite3.Connection) -> list[KeptObject]:
    """Every object's newest state, by type and id."""
    rows = conn.execute(
        "select object_type, object_id, event_id, event_created, deleted, body "
        "from stripe_objects order by object_type, object_id"
    ).fetchall()
    return [KeptObject(r["object_type"], r["object_id"], r["event_id"], r["event_created"],
                       bool(r["deleted"]), json.loads(r["body"])) for r in rows]
