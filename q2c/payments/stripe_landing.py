"""Stripe objects that came by webhook, written into the landing files beside the pulled ones.

The ops store keeps the newest state of each object an event carried
(`q2c.payments.stripe_events`). Before each load of Stripe, `land_webhook_objects` writes
those states into the landing files the pull connector (or a Fivetran export) fills,
flattened by the connector's own `flatten`, so staging and the marts read one table per
object and no second path. A webhook row's `_fivetran_synced` is the moment Stripe created
its event, and it replaces a landed row only when that row was not read later (a pull
reads objects as of its own time): an object seen by both paths is one row, in its newest
state. `_q2c_stripe_event_id` names the event a row came from (empty for pulled rows).

Invoice lines come with a finalized invoice (its lines no longer change) when the event
carries all of them; otherwise the pull lands them.

Checkout Sessions have no raw table. One that q2c's portal created carries
`q2c_invoice_number` (and `q2c_channel`) in its metadata and the invoice id as
`client_reference_id`. Checkout does not copy a session's metadata onto its payment
intent, so when the session is complete those keys are added to the payment intent and its
charges where they lack them, whichever path landed them, with `q2c_channel` `portal`
unless the session says otherwise. The Stripe adapter finds the invoice number and the
channel there, as for any portal payment.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from q2c import opsdb
from q2c.payments.stripe_events import CHECKOUT_SESSION, KeptObject, ensure_schema, kept_objects
from q2c.sources.connectors.flatten import text, utc_text
from q2c.sources.connectors.landing_writer import (
    LandingWriter,
    TableBatch,
    TableShape,
    mark_deleted,
    read_csv_rows,
    table_shape,
)
from q2c.sources.connectors.stripe import LISTS, flatten
from q2c.sources.landing import find_table_file, source_folder
from q2c.sources.schema import raw_table

log = logging.getLogger(__name__)

EVENT_COLUMN = "_q2c_stripe_event_id"
# Invoice statuses after finalization; a draft's lines may still change.
FINALIZED = frozenset({"open", "paid", "uncollectible", "void"})
# The tables whose rows name a payment intent (by `id`, or by `payment_intent_id`).
PAYMENT_INTENT_COLUMN = {"payment_intent": "id", "charge": "payment_intent_id"}


@dataclass
class WebhookLanding:
    """What one landing did: rows offered per table, and the rows each file now holds."""

    folder: Path
    offered: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)


def land_webhook_objects(ops_store: Path, landing_dir: Path) -> WebhookLanding:
    """Write every kept object into Stripe's landing files, the newest state winning."""
    folder = source_folder(Path(landing_dir), "stripe")
    report = WebhookLanding(folder)
    if not Path(ops_store).is_file():
        return report
    with opsdb.connect(ops_store) as conn:
        ensure_schema(conn)
        kept = kept_objects(conn)

    overlays = portal_overlays(kept)
    batches = []
    for table in LISTS:
        objects = [obj for obj in kept if obj.object_type == table]
        batches += _table_batches(folder, table, objects, overlays)
    if not batches:
        return report

    writer = LandingWriter(folder.parent, folder.name)
    writer.write_page(batches)
    merged = writer.merge()
    for batch in batches:
        report.offered[batch.table.name] = (report.offered.get(batch.table.name, 0)
                                            + len(batch.rows))
        report.files[batch.table.name] = merged.get(batch.table.name, 0)
    log.info("stripe webhooks: %s offered to the landing files in %s, the newest state "
             "of each object kept", ", ".join(f"{n} {t} rows" for t, n in
                                             report.offered.items()), folder)
    return report


def portal_overlays(kept: Iterable[KeptObject]) -> dict[str, dict[str, str]]:
    """The q2c metadata of each completed portal Checkout Session, by payment intent id."""
    overlays: dict[str, dict[str, str]] = {}
    for obj in kept:
        session = obj.body
        if obj.object_type != CHECKOUT_SESSION or session.get("status") != "complete":
            continue
        intent = session.get("payment_intent")
        intent = intent.get("id") if isinstance(intent, dict) else intent
        metadata = session.get("metadata") if isinstance(session.get("metadata"), dict) else {}
        keys = {str(k): str(v) for k, v in metadata.items()
                if str(k).startswith("q2c_") and v is not None}
        if not isinstance(intent, str) or "q2c_invoice_number" not in keys:
            continue
        if session.get("client_reference_id"):
            keys.setdefault("q2c_invoice_id", str(session["client_reference_id"]))
        keys.setdefault("q2c_channel", "portal")
        keys["q2c_checkout_session_id"] = obj.object_id
        overlays[intent] = keys
    return overlays


def _table_batches(folder: Path, table: str, objects: list[KeptObject],
                   overlays: dict[str, dict[str, str]]) -> list[TableBatch]:
    shape = _shape(folder, table)
    rows = [_row(obj, shape) for obj in objects]
    if table in PAYMENT_INTENT_COLUMN and overlays:
        rows = [*_landed_rows_named(folder, shape, table, overlays), *rows]
        rows = [_with_overlay(row, table, overlays) for row in rows]
    batches = [TableBatch(shape, rows, newest_wins=True)] if rows else []
    lines_table = LISTS[table].lines_table
    if lines_table:
        batches += _line_batches(folder, table, lines_table, objects)
    return batches


def _shape(folder: Path, table: str) -> TableShape:
    """The table's declared shape, named for the file the load reads (`charge_data.csv`
    from a Fivetran export, else `charge.csv`)."""
    landed = find_table_file(folder, raw_table("stripe", table))
    shape = table_shape("stripe", table)
    return replace(shape, name=landed.stem) if landed else shape


def _row(obj: KeptObject, shape: TableShape) -> dict[str, Any]:
    row = flatten(obj.body, frozenset({"lines"}))
    mark_deleted(row, shape, obj.deleted, "is_deleted")
    row["_fivetran_synced"] = utc_text(obj.event_created)
    row[EVENT_COLUMN] = obj.event_id
    return row


def _line_batches(folder: Path, table: str, lines_table: str,
                  objects: list[KeptObject]) -> list[TableBatch]:
    """A finalized invoice's lines, replacing those landed for it, when all are carried."""
    shape = _shape(folder, lines_table)
    parent_column = f"{table}_id"
    parents, rows = [], []
    for obj in objects:
        lines = obj.body.get("lines")
        complete = (isinstance(lines, dict) and isinstance(lines.get("data"), list)
                    and not lines.get("has_more"))
        if obj.deleted or obj.body.get("status") not in FINALIZED or not complete:
            continue
        parents.append(obj.object_id)
        for line in lines["data"]:
            row = flatten(line)
            row[parent_column] = obj.object_id
            mark_deleted(row, shape, False, "is_deleted")
            row["_fivetran_synced"] = utc_text(obj.event_created)
            row[EVENT_COLUMN] = obj.event_id
            rows.append(row)
    if not parents:
        return []
    return [TableBatch(shape, rows, replace_column=parent_column, replace_ids=parents)]


def _landed_rows_named(folder: Path, shape: TableShape, table: str,
                       overlays: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    """Rows already landed (pulled, say) for a payment intent a portal session paid."""
    path = folder / f"{shape.name}.csv"
    if not path.is_file():
        return []
    column = PAYMENT_INTENT_COLUMN[table]
    _, rows = read_csv_rows(path)
    return [row for row in rows if row.get(column) in overlays]


def _with_overlay(row: dict[str, Any], table: str,
                  overlays: dict[str, dict[str, str]]) -> dict[str, Any]:
    keys = overlays.get(row.get(PAYMENT_INTENT_COLUMN[table]) or "")
    if not keys:
        return row
    metadata = _metadata(row.get("metadata"))
    if metadata is None:
        log.warning("stripe %s %s: metadata is not a JSON object, so the portal "
                    "session's invoice keys were not added", table, row.get("id"))
        return row
    added = {k: v for k, v in keys.items() if k not in metadata}
    return {**row, "metadata": text({**metadata, **added})} if added else row


def _metadata(value: object) -> dict | None:
    if value in (None, ""):
        return {}
    try:
        parsed = json.loads(str(value))
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
