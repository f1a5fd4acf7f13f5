"""Pull QuickBooks Online entities (query API) into raw tables in Fivetran's shape.

Each entity is read with the query language, oldest change first:
`select * from Invoice where Metadata.LastUpdatedTime >= '<mark>' orderby
Metadata.LastUpdatedTime startposition 1 maxresults 100`. STARTPOSITION is an offset, and an
entity changed during the pull moves to the end of the order, which would shift a plain
offset past one not yet read; so after a page that landed something the query starts again
at position 1 from the new mark. Only a page made entirely of entities already landed at
the mark (a bulk change sharing one timestamp) moves the offset on.

Columns follow the Fivetran QuickBooks connector (q2c/sources/tables/quickbooks.py): field
names in snake case, references as `<name>_id` (`CustomerRef` -> `customer_id`), `TxnDate` ->
`transaction_date`, `TotalAmt` -> `total_amount`, custom fields as `custom_<name>`,
`MetaData` times as `created_at`/`updated_at` in UTC. Lines land in `<entity>_line` and tax
lines in `<entity>_tax_line` by position (`index`, from 0), replaced per parent; billing
and shipping addresses in `address`. Deleted entities are not returned by queries (they
need the change data capture API), so `_fivetran_deleted` is always false here.

API reference: Intuit's QuickBooks Online API guide, "Data queries" (developer.intuit.com).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from q2c.sources.connectors.base import Connector, Page, Watermark
from q2c.sources.connectors.config import EnvValue, read_env
from q2c.sources.connectors.cursors import CursorStore
from q2c.sources.connectors.errors import ProviderError
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

PROVIDER = "QuickBooks Online"
DEFAULT_MINOR_VERSION = "75"


@dataclass(frozen=True)
class Entity:
    table: str
    name: str
    lines: bool = False
    tax_lines: bool = False


ENTITIES = {
    e.table: e
    for e in (
        Entity("customer", "Customer"),
        Entity("item", "Item"),
        Entity("term", "Term"),
        Entity("invoice", "Invoice", lines=True, tax_lines=True),
        Entity("payment", "Payment", lines=True),
        Entity("credit_memo", "CreditMemo", lines=True, tax_lines=True),
    )
}

_RENAMES = {
    "TxnDate": "transaction_date", "TotalAmt": "total_amount",
    "HomeTotalAmt": "home_total_amount", "Qty": "quantity",
    "PaymentRefNum": "reference_number", "UnappliedAmt": "unapplied_amount",
    "TxnSource": "transaction_source", "PrimaryEmailAddr": "email",
    "BillEmail": "billing_email", "BillEmailCc": "billing_cc_email",
    "BillEmailBcc": "billing_bcc_email", "WebAddr": "website",
    "PrimaryPhone": "phone_number", "Mobile": "mobile_number", "Fax": "fax_number",
    "AlternatePhone": "alternate_phone_number", "ShipAddr": "shipping_address_id",
    "BillAddr": "billing_address_id", "Lat": "latitude", "Long": "longitude",
}
# The customer's own names differ from the transactions' in Fivetran's schema.
_CUSTOMER_RENAMES = {"BillAddr": "bill_address_id", "ParentRef": "parent_customer_id"}
_SKIPPED = frozenset({"domain", "sparse", "Line", "TxnTaxDetail", "LinkedTxn", "MetaData",
                      "CustomField"})
_ADDRESS_FIELDS = ("BillAddr", "ShipAddr")


def _error_text(data: Any, raw: str) -> str:
    """A `Fault`; the identity layer (401) writes the same keys in lower case."""
    if not isinstance(data, dict):
        return raw[:300] or "no error text"
    lowered = {k.lower(): v for k, v in data.items()}
    fault = lowered.get("fault")
    if not isinstance(fault, dict):
        return raw[:300] or "no error text"
    fault = {k.lower(): v for k, v in fault.items()}
    described = []
    for error in fault.get("error") or []:
        error = {k.lower(): v for k, v in error.items()}
        detail = f" ({error['detail']})" if error.get("detail") else ""
        described.append(f"{error.get('code', '')} {error.get('message', '')}{detail}")
    return f"{fault.get('type', 'Fault')}: {'; '.join(described)}"


def _column(key: str, renames: Mapping[str, str]) -> str:
    if key in renames:
        return renames[key]
    if key.endswith("Ref"):
        return f"{snake_case(key[:-3])}_id"
    return snake_case(key)


def _value(item: Any) -> Any:
    """A reference, memo, email, phone or web address object as its one value."""
    if isinstance(item, dict):
        for key in ("value", "Address", "FreeFormNumber", "URI", "Id"):
            if key in item:
                return item[key]
    return item


def flatten(entity: Mapping[str, Any], renames: Mapping[str, str] = _RENAMES,
            prefix: str = "") -> dict[str, Any]:
    """One QuickBooks object (or line detail) as a flat row of landed text."""
    row: dict[str, Any] = {}
    for key, item in entity.items():
        if key in _SKIPPED:
            continue
        name = prefix + _column(key, renames)
        if isinstance(item, dict) and any(
            k in item for k in ("value", "Address", "FreeFormNumber", "URI", "Id")
        ):
            row[name] = text(_value(item))
        elif isinstance(item, dict):
            row.update(flatten(item, renames, f"{name}_"))
        else:
            row[name] = text(item)
    for field in entity.get("CustomField") or []:
        label = re.sub(r"[^0-9a-z]+", "_", str(field.get("Name", "")).lower()).strip("_")
        value = next((field[k] for k in field if k.endswith("Value")), None)
        row[f"{prefix}custom_{label}"] = text(value)
    meta = entity.get("MetaData") or {}
    if meta:
        row[f"{prefix}created_at"] = utc_text(meta.get("CreateTime"))
        row[f"{prefix}updated_at"] = utc_text(meta.get("LastUpdatedTime"))
    return row


def _line_row(line: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A transaction line: its detail's fields prefixed by the detail type
    (`SalesItemLineDetail.ItemRef` -> `sales_item_item_id`)."""
    row: dict[str, Any] = {"index": str(index)}
    for key, item in line.items():
        if key in ("Id", "LineNum", "LinkedTxn") or key.endswith("LineDetail"):
            continue
        row[_column(key, _RENAMES)] = text(_value(item))
    detail_type = line.get("DetailType") or ""
    detail = line.get(detail_type) or {}
    if detail:
        prefix = snake_case(detail_type.removesuffix("LineDetail")) + "_"
        row.update(flatten(detail, _RENAMES, prefix))
    for linked in line.get("LinkedTxn") or []:
        row[f"{snake_case(linked.get('TxnType', 'txn'))}_id"] = text(linked.get("TxnId"))
    return row


def _tax_line_row(line: Mapping[str, Any], index: int) -> dict[str, Any]:
    row: dict[str, Any] = {"index": str(index), "amount": text(line.get("Amount"))}
    row.update(flatten(line.get("TaxLineDetail") or {}, _RENAMES))
    return row


def _address_row(address: Mapping[str, Any]) -> dict[str, Any]:
    return flatten(address, _RENAMES) | {"id": text(address.get("Id"))}


class QuickBooksConnector(Connector):
    """Customers, items, terms, invoices, payments and credit memos, with their lines."""

    source = "quickbooks"
    streams = tuple(ENTITIES)

    def __init__(
        self, client: HttpClient, landing_dir: Path, cursors: CursorStore,
        realm_id: str = "", page_size: int = 100,
        minor_version: str = DEFAULT_MINOR_VERSION,
    ) -> None:
        super().__init__(client, landing_dir, cursors, min(page_size, 1000))
        self.realm_id = realm_id
        self.minor_version = minor_version

    @classmethod
    def from_env(
        cls, landing_dir: Path, cursors: CursorStore, env: Mapping[str, str] | None = None,
        page_size: int | None = None,
        **client_options: Any,
    ) -> QuickBooksConnector:
        """Q2C_QUICKBOOKS_REALM_ID, Q2C_QUICKBOOKS_TOKEN, Q2C_QUICKBOOKS_URL (production by
        default; the sandbox is https://sandbox-quickbooks.api.intuit.com)."""
        values = read_env(PROVIDER, {
            "realm": EnvValue("Q2C_QUICKBOOKS_REALM_ID", what="the company (realm) id"),
            "token": EnvValue("Q2C_QUICKBOOKS_TOKEN", what="an OAuth 2.0 access token",
                              secret=True),
            "url": EnvValue("Q2C_QUICKBOOKS_URL", "https://quickbooks.api.intuit.com"),
            "minor": EnvValue("Q2C_QUICKBOOKS_MINOR_VERSION", DEFAULT_MINOR_VERSION),
        }, env)
        # 500 requests a minute per company (Intuit's published throttle).
        client_options.setdefault("limiter", RateLimiter(rate=8, burst=10))
        client = HttpClient(
            provider=PROVIDER, base_url=values["url"],
            headers={"Authorization": f"Bearer {values['token']}",
                     "Accept": "application/json"},
            auth_hint=("Set Q2C_QUICKBOOKS_TOKEN to a current OAuth 2.0 access token for the "
                       "company (they last one hour: refresh it with the app's refresh token) "
                       "and Q2C_QUICKBOOKS_REALM_ID to its company id."),
            error_text=_error_text, secrets=(values["token"],), **client_options,
        )
        return cls(client, landing_dir, cursors, realm_id=values["realm"],
                   page_size=page_size or 100, minor_version=values["minor"])

    def pages(self, stream: str, state: dict[str, Any]) -> Iterator[Page]:
        entity = ENTITIES[stream]
        check = PageCheck(PROVIDER, stream)
        mark = Watermark.from_state(state)
        position = 1
        # The pages read at each mark: STARTPOSITION moves on only while the mark stays, and
        # a later position answered with a page already read means the offset is ignored.
        read_at: dict[tuple[str | None, tuple[str, ...]], int] = {}
        while True:
            records = self._query(entity, mark.value, position, check)
            where = f"the {entity.name} query at STARTPOSITION {position}"
            entries = []
            for number, record in enumerate(records, start=1):
                meta = record.get("MetaData")
                value = meta.get("LastUpdatedTime") if isinstance(meta, dict) else None
                entries.append((record, check.text(record, "Id", where, number),
                                check.moment(value, "MetaData.LastUpdatedTime", where, number)))
            page = (mark.value, tuple(record_id for _, record_id, _ in entries))
            if records and page in read_at:
                check.repeated(
                    f"STARTPOSITION {position} answered the same entities (Id "
                    f"{', '.join(page[1])}) as STARTPOSITION {read_at[page]}")
            read_at[page] = position
            before = mark.value
            fresh = []
            for record, record_id, moment in entries:
                if not mark.seen(record_id, moment):
                    fresh.append(record)
                    mark.advance(record_id, moment)
            yield Page(self._batches(entity, fresh, check), mark.to_state(), len(fresh))
            if len(records) < self.page_size:
                return
            position = 1 if mark.value != before else position + self.page_size

    def _query(self, entity: Entity, since: str | None, position: int,
               check: PageCheck) -> list[dict]:
        statement = f"select * from {entity.name}"
        if since:
            literal = parse_instant(since).strftime("%Y-%m-%dT%H:%M:%S+00:00")
            statement += f" where Metadata.LastUpdatedTime >= '{literal}'"
        statement += (f" orderby Metadata.LastUpdatedTime startposition {position} "
                      f"maxresults {self.page_size}")
        reply = self.client.get(
            f"/v3/company/{self.realm_id}/query",
            {"query": statement, "minorversion": self.minor_version},
        )
        where = f"GET /v3/company/{self.realm_id}/query ({entity.name})"
        data = check.body(reply.data, where)
        if "Fault" in data or "fault" in data:
            raise ProviderError(
                PROVIDER, f"{PROVIDER} rejected the query on {entity.name}: "
                f"{_error_text(data, '')}",
            )
        answer = data.get("QueryResponse") or {}
        if not isinstance(answer, dict):
            raise check.fail(f"`QueryResponse` in the answer of {where} is not an object")
        return check.items(answer, entity.name, where)

    def _batches(self, entity: Entity, records: list[dict],
                 check: PageCheck) -> list[TableBatch]:
        with check.reading(f"the {entity.name} page"):
            return self._rows(entity, records)

    def _rows(self, entity: Entity, records: list[dict]) -> list[TableBatch]:
        if not records:
            return []
        synced = synced_now()
        renames = {**_RENAMES, **_CUSTOMER_RENAMES} if entity.table == "customer" else _RENAMES
        shape = table_shape("quickbooks", entity.table, ("id",), "_fivetran_deleted")
        rows = []
        for record in records:
            row = flatten(record, renames)
            tax = (record.get("TxnTaxDetail") or {}).get("TotalTax")
            if tax is not None:
                row["total_tax"] = text(tax)
            rows.append(_finish(row, shape, synced))
        batches = [TableBatch(shape, rows)]
        ids = [str(record["Id"]) for record in records]
        parent = f"{entity.table}_id"
        if entity.lines:
            batches.append(self._children(
                f"{entity.table}_line", parent, records, ids, synced,
                lambda r: [_line_row(line, i) for i, line in enumerate(r.get("Line") or [])],
            ))
        if entity.tax_lines:
            batches.append(self._children(
                f"{entity.table}_tax_line", parent, records, ids, synced,
                lambda r: [_tax_line_row(line, i) for i, line in enumerate(
                    (r.get("TxnTaxDetail") or {}).get("TaxLine") or [])],
            ))
        addresses = [
            _finish(_address_row(record[field]), table_shape("quickbooks", "address"), synced)
            for record in records for field in _ADDRESS_FIELDS
            if isinstance(record.get(field), dict) and record[field].get("Id")
        ]
        if addresses:
            batches.append(TableBatch(table_shape("quickbooks", "address"), addresses))
        return batches

    def _children(self, table, parent, records, ids, synced, rows_of) -> TableBatch:
        shape = table_shape("quickbooks", table, (parent, "index"), "_fivetran_deleted")
        rows = [
            _finish(row | {parent: str(record["Id"])}, shape, synced)
            for record in records for row in rows_of(record)
        ]
        return TableBatch(shape, rows, replace_column=parent, replace_ids=ids)


def _finish(row: dict[str, Any], shape: TableShape, synced: str) -> dict[str, Any]:
    mark_deleted(row, shape, False, "_fivetran_deleted")
    row["_fivetran_synced"] = synced
    return row
