"""Pull Stripe objects (list API) into raw tables in Fivetran's Stripe shape.

Every list is paged with `starting_after` while `has_more` is true, filtered with
`created[gte]` from the committed mark. Stripe lists newest first, so the mark can only move
once a list has been read to its end; until then the state keeps the last id read
(`pending.starting_after`) and a failed pull resumes after it. Objects created at exactly
the mark (timestamps are whole seconds) are recognised by id and not landed twice.

Flattening follows Fivetran: a reference to another object (an id, or the object when
expanded) lands as `<field>_id` (`customer_id`, `balance_transaction_id`); other nested
objects become prefixed columns (`address.line1` -> `address_line_1`,
`period.start` -> `period_start`); `metadata` and lists land as JSON; epoch timestamps land in
UTC. Invoice and credit note lines land in `invoice_line_item` and `credit_note_line_item`,
replaced per parent. Amounts stay in minor units, as Stripe sends them.

The list API filters only by creation time: a later change to an old object (an invoice
being paid) is landed by a full pull (`full_refresh`), not by an incremental one.

API reference: https://docs.stripe.com/api/pagination
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from q2c.sources.connectors.base import Connector, Page, Watermark
from q2c.sources.connectors.config import EnvValue, read_env
from q2c.sources.connectors.cursors import CursorStore
from q2c.sources.connectors.flatten import (
    parse_instant,
    snake_case,
    synced_now,
    text,
    utc_text,
)
from q2c.sources.connectors.http import HttpClient
from q2c.sources.connectors.landing_writer import (
    TableBatch,
    TableShape,
    mark_deleted,
    table_shape,
)
from q2c.sources.connectors.paging import PageCheck
from q2c.sources.connectors.rate_limit import RateLimiter

PROVIDER = "Stripe"
DEFAULT_STRIPE_VERSION = "2024-06-20"


@dataclass(frozen=True)
class StripeList:
    table: str
    path: str
    lines_table: str | None = None


LISTS = {
    item.table: item
    for item in (
        StripeList("customer", "/v1/customers"),
        StripeList("invoice", "/v1/invoices", lines_table="invoice_line_item"),
        StripeList("charge", "/v1/charges"),
        StripeList("payment_intent", "/v1/payment_intents"),
        StripeList("refund", "/v1/refunds"),
        StripeList("credit_note", "/v1/credit_notes", lines_table="credit_note_line_item"),
        StripeList("balance_transaction", "/v1/balance_transactions"),
        StripeList("payout", "/v1/payouts"),
        StripeList("dispute", "/v1/disputes"),
    )
}

# Top-level fields that hold the id of another Stripe object when not expanded.
REFERENCE_FIELDS = frozenset("""
    customer invoice charge payment_intent balance_transaction failure_balance_transaction
    subscription subscription_item default_payment_method payment_method refund
    customer_balance_transaction plan price product transfer payout credit_note
""".split())
# A payout's destination is a bank account or a card; Fivetran lands each in its own column.
_DESTINATION_KINDS = {"ba_": "bank_account", "card_": "card"}
TIMESTAMP_FIELDS = frozenset("""
    created due_date available_on arrival_date period_start period_end next_payment_attempt
    trial_start trial_end current_period_start current_period_end start_date
    billing_cycle_anchor
""".split())


def _error_text(data: Any, raw: str) -> str:
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        kind = "/".join(str(error[k]) for k in ("type", "code") if error.get(k))
        return f"{kind}: {error.get('message', '')}" if kind else str(error.get("message"))
    return raw[:300] or "no error text"


def flatten(obj: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One Stripe object as a flat row of landed text, in Fivetran's column names."""
    row: dict[str, Any] = {}

    def walk(prefix: str, value: Mapping[str, Any]) -> None:
        for key, item in value.items():
            if (not prefix and key in skip) or key == "object":
                continue
            name = prefix + snake_case(key)
            if key == "metadata" or isinstance(item, list):
                row[name] = text(item)
            elif isinstance(item, dict):
                if item.get("object") == "list":
                    continue
                if "id" in item and "object" in item:
                    row[f"{name}_id"] = text(item["id"])
                else:
                    walk(f"{name}_", item)
            elif not prefix and key in REFERENCE_FIELDS and isinstance(item, str):
                row[f"{name}_id"] = item
            elif not prefix and key == "destination" and _destination_kind(item):
                row[f"destination_{_destination_kind(item)}_id"] = item
            elif _is_timestamp(name, item):
                row[name] = utc_text(int(item))
            else:
                row[name] = text(item)

    walk("", obj)
    return row


def _destination_kind(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return next((k for p, k in _DESTINATION_KINDS.items() if value.startswith(p)), None)


def _is_timestamp(name: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return name in TIMESTAMP_FIELDS or name.endswith("_at")


class StripeConnector(Connector):
    """Customers, invoices and their lines, charges, payment intents, refunds, credit notes
    and their lines, balance transactions, payouts and disputes."""

    source = "stripe"
    streams = tuple(LISTS)

    def __init__(
        self, client: HttpClient, landing_dir: Path, cursors: CursorStore, page_size: int = 100
    ) -> None:
        super().__init__(client, landing_dir, cursors, min(page_size, 100))

    @classmethod
    def from_env(
        cls, landing_dir: Path, cursors: CursorStore, env: Mapping[str, str] | None = None,
        page_size: int | None = None,
        **client_options: Any,
    ) -> StripeConnector:
        """Q2C_STRIPE_API_KEY (secret or restricted key), Q2C_STRIPE_VERSION, Q2C_STRIPE_URL."""
        values = read_env(PROVIDER, {
            "key": EnvValue("Q2C_STRIPE_API_KEY", what="a secret or restricted API key",
                            secret=True),
            "version": EnvValue("Q2C_STRIPE_VERSION", DEFAULT_STRIPE_VERSION),
            "url": EnvValue("Q2C_STRIPE_URL", "https://api.stripe.com"),
        }, env)
        client_options.setdefault("limiter", RateLimiter(rate=20, burst=20))
        client = HttpClient(
            provider=PROVIDER, base_url=values["url"],
            headers={"Authorization": f"Bearer {values['key']}",
                     "Stripe-Version": values["version"]},
            auth_hint=("Set Q2C_STRIPE_API_KEY to a secret key, or a restricted key with read "
                       "access to the objects pulled, of the Stripe account."),
            error_text=_error_text, secrets=(values["key"],), **client_options,
        )
        return cls(client, landing_dir, cursors, page_size or 100)

    def pages(self, stream: str, state: dict[str, Any]) -> Iterator[Page]:
        spec = LISTS[stream]
        check = PageCheck(PROVIDER, stream)
        committed = Watermark.from_state(state)
        pending = dict(state.get("pending") or {})
        newest = Watermark.from_state(pending) if pending else Watermark()
        starting_after = pending.get("starting_after")
        if starting_after:
            check.follow(starting_after, "starting_after")
        while True:
            params: dict[str, Any] = {"limit": self.page_size}
            if committed.value:
                params["created[gte]"] = int(parse_instant(committed.value).timestamp())
            if starting_after:
                params["starting_after"] = starting_after
            reply = self.client.get(spec.path, params)
            body = check.body(reply.data, f"GET {spec.path}")
            data = check.items(body, "data", f"GET {spec.path}")
            entries = [
                (obj, check.text(obj, "id", f"GET {spec.path}", n),
                 check.moment(obj.get("created"), "created", f"GET {spec.path}", n))
                for n, obj in enumerate(data, start=1)
            ]
            fresh = []
            for obj, object_id, moment in entries:
                if not committed.seen(object_id, moment):
                    fresh.append(obj)
                    newest.advance(object_id, moment)
            has_more = bool(body.get("has_more")) and bool(data)
            if has_more:
                starting_after = entries[-1][1]
                check.follow(starting_after, "starting_after")
                state_now = {**committed.to_state(),
                             "pending": {**newest.to_state(), "starting_after": starting_after}}
            else:
                state_now = (newest if newest.value else committed).to_state()
            yield Page(self._batches(spec, fresh, check), state_now, len(fresh))
            if not has_more:
                return

    def _batches(self, spec: StripeList, objects: list[dict],
                 check: PageCheck) -> list[TableBatch]:
        if not objects:
            return []
        shape = table_shape("stripe", spec.table, ("id",))
        synced = synced_now()
        with check.reading(f"GET {spec.path}"):
            rows = [_with_sync(flatten(o, frozenset({"lines"})), shape, synced)
                    for o in objects]
        batches = [TableBatch(shape, rows)]
        if spec.lines_table:
            parent_column = f"{spec.table}_id"
            lines_shape = table_shape("stripe", spec.lines_table, (parent_column, "id"))
            line_rows = []
            for obj in objects:
                for line in self._lines(obj, check):
                    with check.reading(f"the lines of {obj['id']}"):
                        row = flatten(line)
                    row[parent_column] = obj["id"]
                    line_rows.append(_with_sync(row, lines_shape, synced))
            batches.append(TableBatch(
                lines_shape, line_rows, replace_column=parent_column,
                replace_ids=[o["id"] for o in objects],
            ))
        return batches

    def _lines(self, obj: dict, check: PageCheck) -> Iterator[dict]:
        """The parent's embedded lines, then the rest of them from the lines list."""
        where = f"the lines of {obj['id']}"
        lines = obj.get("lines") or {}
        if not isinstance(lines, dict):
            raise check.fail(f"`lines` of {obj['id']} is not a list object")
        data = check.items(lines, "data", where)
        yield from data
        has_more = bool(lines.get("has_more"))
        pages = PageCheck(PROVIDER, f"{check.stream} (lines of {obj['id']})")
        while has_more and data:
            url = lines.get("url")
            if not isinstance(url, str) or not url:
                raise check.fail(f"{where} have more pages but no `url` to read them from")
            after = check.text(data[-1], "id", where, len(data))
            pages.follow(after, "starting_after")
            reply = self.client.get(url, {"limit": self.page_size, "starting_after": after})
            body = check.body(reply.data, f"GET {url}")
            data = check.items(body, "data", f"GET {url}")
            yield from data
            has_more = bool(body.get("has_more"))


def _with_sync(row: dict[str, Any], shape: TableShape, synced: str) -> dict[str, Any]:
    mark_deleted(row, shape, False, "is_deleted")
    row["_fivetran_synced"] = synced
    return row
