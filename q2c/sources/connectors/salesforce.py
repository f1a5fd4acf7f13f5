"""Pull Salesforce objects (REST query API) into raw tables in Fivetran's Salesforce shape.

Each object is described first (`/sobjects/<Object>/describe`) and every field but the
compound ones (addresses, geolocations: their parts are fields of their own) is selected,
as Fivetran does. Rows come from `queryAll`, so deleted records in the recycle bin arrive
with `IsDeleted = true` and land as `is_deleted`. Columns are the field names in lower snake
case (`BillingCountryCode` -> `billing_country_code`, `Invoice_Number__c` ->
`invoice_number_c`); a field matching a declared raw column apart from underscores takes the
declared name. Timestamps land in UTC.

Incremental: `WHERE LastModifiedDate >= <mark> ORDER BY LastModifiedDate, Id`, paged with
`nextRecordsUrl`. A query's result set is fixed when it runs, so following the locator
cannot skip a record; after a failure the pull queries again from the committed mark.

API reference: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from q2c.sources.connectors.base import Connector, Page, Watermark
from q2c.sources.connectors.config import EnvValue, read_env
from q2c.sources.connectors.cursors import CursorStore
from q2c.sources.connectors.errors import ConnectorError, ProviderError
from q2c.sources.connectors.flatten import (
    cursor_text,
    loose_name,
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
from q2c.sources.schema import tables_of

PROVIDER = "Salesforce"
DEFAULT_API_VERSION = "v61.0"
_COMPOUND_TYPES = frozenset({"address", "location"})
_CURSOR_FIELDS = ("LastModifiedDate", "SystemModstamp")


def _error_text(data: Any, raw: str) -> str:
    """Salesforce errors are a JSON list of {"message", "errorCode"}."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return "; ".join(f"{e.get('errorCode', 'ERROR')}: {e.get('message', '')}" for e in data)
    return raw[:300] or "no error text"


def _classify(status: int, data: Any) -> type[ConnectorError] | None:
    codes = {e.get("errorCode") for e in data if isinstance(e, dict)} if isinstance(
        data, list) else set()
    if status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
        # The org's rolling 24-hour API allowance is used up: it is no missing permission,
        # and no retry within a run can help.
        return ProviderError
    return None


def sobject_of(table: str) -> str:
    """The API name of a standard object from its table name: `opportunity_line_item` ->
    `OpportunityLineItem`. Custom objects (`__c`) are named explicitly."""
    return "".join(part.capitalize() for part in table.split("_"))


class SalesforceConnector(Connector):
    """The declared Salesforce tables, or the sObjects given by API name."""

    source = "salesforce"

    def __init__(
        self, client: HttpClient, landing_dir: Path, cursors: CursorStore,
        page_size: int = 2000, api_version: str = DEFAULT_API_VERSION,
        objects: Iterable[str] | None = None,
    ) -> None:
        super().__init__(client, landing_dir, cursors, page_size)
        self.api_version = api_version
        names = list(objects) if objects is not None else [
            sobject_of(t.name) for t in tables_of("salesforce")
        ]
        self.objects = {snake_case(name): name for name in names}
        self.streams = tuple(self.objects)

    @classmethod
    def from_env(
        cls, landing_dir: Path, cursors: CursorStore, env: Mapping[str, str] | None = None,
        objects: Iterable[str] | None = None, page_size: int | None = None,
        **client_options: Any,
    ) -> SalesforceConnector:
        """Q2C_SALESFORCE_INSTANCE_URL, Q2C_SALESFORCE_TOKEN, Q2C_SALESFORCE_API_VERSION."""
        values = read_env(PROVIDER, {
            "url": EnvValue("Q2C_SALESFORCE_INSTANCE_URL",
                            what="the org's URL, https://<my-domain>.my.salesforce.com"),
            "token": EnvValue("Q2C_SALESFORCE_TOKEN", what="an OAuth access token", secret=True),
            "version": EnvValue("Q2C_SALESFORCE_API_VERSION", DEFAULT_API_VERSION),
        }, env)
        client_options.setdefault("limiter", RateLimiter(rate=20, burst=20))
        client = HttpClient(
            provider=PROVIDER, base_url=values["url"],
            headers={"Authorization": f"Bearer {values['token']}",
                     "Accept": "application/json"},
            auth_hint=("Set Q2C_SALESFORCE_TOKEN to a current OAuth access token of a user "
                       "who can read the objects (access tokens expire: get a new one from "
                       "the connected app) and Q2C_SALESFORCE_INSTANCE_URL to its org."),
            error_text=_error_text, classify=_classify, secrets=(values["token"],),
            **client_options,
        )
        return cls(client, landing_dir, cursors, page_size=page_size or 2000,
                   api_version=values["version"], objects=objects)

    def pages(self, stream: str, state: dict[str, Any]) -> Iterator[Page]:
        sobject = self.objects[stream]
        check = PageCheck(PROVIDER, stream)
        shape = table_shape("salesforce", stream, ("id",))
        fields = self._describe(sobject, check)
        columns = _column_names(fields, shape)
        cursor = next((name for name in _CURSOR_FIELDS if name in fields), None)
        mark = Watermark.from_state(state)
        soql = f"SELECT {', '.join(fields)} FROM {sobject}"
        if cursor and mark.value:
            since = parse_instant(mark.value).strftime("%Y-%m-%dT%H:%M:%SZ")
            soql += f" WHERE {cursor} >= {since}"
        if cursor:
            soql += f" ORDER BY {cursor} ASC, Id ASC"
        base = f"/services/data/{self.api_version}"
        where = f"GET {base}/queryAll"
        reply = self.client.get(f"{base}/queryAll", {"q": soql})
        while True:
            body = check.body(reply.data, where)
            records = check.items(body, "records", where)
            for number, record in enumerate(records, start=1):
                check.text(record, "Id", where, number)
                if cursor:
                    check.moment(record.get(cursor), cursor, where, number)
            if cursor:
                records = mark.take(records, lambda r: str(r["Id"]),
                                    lambda r: cursor_text(parse_instant(r[cursor])))
            with check.reading(where):
                rows = [_row(record, fields, columns, shape) for record in records]
            batches = [TableBatch(shape, rows)] if rows else []
            next_url = body.get("nextRecordsUrl")
            more = not body.get("done", True) and bool(next_url)
            if more:
                if not isinstance(next_url, str):
                    raise check.fail(f"`nextRecordsUrl` in the answer of {where} is not a "
                                     "link")
                check.follow(next_url, "nextRecordsUrl")
            yield Page(batches, mark.to_state(), len(rows))
            if not more:
                return
            where = f"GET {next_url}"
            reply = self.client.get(next_url)

    def _describe(self, sobject: str, check: PageCheck) -> dict[str, str]:
        """Queryable field names and their types, compound fields left out."""
        path = f"/services/data/{self.api_version}/sobjects/{sobject}/describe"
        reply = self.client.get(path)
        fields = check.items(check.body(reply.data, f"GET {path}"), "fields", f"GET {path}")
        return {
            check.text(field, "name", f"GET {path}", n): str(field.get("type") or "string")
            for n, field in enumerate(fields, start=1)
            if field.get("type") not in _COMPOUND_TYPES and field.get("type") != "base64"
        }


def _column_names(fields: Mapping[str, str], shape: TableShape) -> dict[str, str]:
    declared = {loose_name(column): column for column in shape.columns}
    return {name: declared.get(loose_name(name), snake_case(name)) for name in fields}


def _row(
    record: dict, fields: Mapping[str, str], columns: Mapping[str, str], shape: TableShape
) -> dict[str, str | None]:
    row: dict[str, str | None] = {}
    for name, kind in fields.items():
        value = record.get(name)
        row[columns[name]] = utc_text(value) if kind == "datetime" else text(value)
    mark_deleted(row, shape, False, "_fivetran_deleted")
    row["_fivetran_synced"] = synced_now()
    return row
