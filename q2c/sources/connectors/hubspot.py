"""Pull HubSpot CRM objects (v3 objects API) into raw tables in Fivetran's HubSpot shape.

A first pull lists every object (`GET /crm/v3/objects/<type>`, paged by `after`); later
pulls search for objects modified since the committed mark (`POST .../search`, filter
`<modified property> GTE <epoch ms>`, sorted ascending). Each object lands as `id` (`deal_id`
for deals) plus one `property_<name>` column per property, as Fivetran names them; datetime
properties are converted to UTC. Associations are read in batches from the v4 associations
API and land as `deal_company`, `deal_contact`, `ticket_company`, `ticket_contact`,
`ticket_deal` and `line_item_deal` (`<from>_id`, `<to>_id`, `type_id`, `category`).
Owners and the deal and ticket pipelines with their stages are read whole on each pull.
Archived (deleted) objects are not read: the list and search endpoints return live objects.

API reference: https://developers.hubspot.com/docs/api/crm/understanding-the-crm
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from q2c.sources.connectors.base import Connector, Page, Watermark
from q2c.sources.connectors.config import EnvValue, read_env
from q2c.sources.connectors.cursors import CursorStore
from q2c.sources.connectors.flatten import (
    cursor_text,
    parse_instant,
    synced_now,
    text,
    utc_text,
)
from q2c.sources.connectors.http import HttpClient, Reply
from q2c.sources.connectors.landing_writer import (
    TableBatch,
    TableShape,
    mark_deleted,
    table_shape,
)
from q2c.sources.connectors.paging import PageCheck
from q2c.sources.connectors.rate_limit import RateLimiter

PROVIDER = "HubSpot"
# The list endpoint takes the property names in its URL; a portal with more than fit in a
# URL of safe length is read through the search endpoint, which takes them in the body.
LIST_PROPERTIES_LIMIT = 4000


@dataclass(frozen=True)
class HubSpotObject:
    table: str
    api_name: str
    modified_property: str
    key: str = "id"
    soft_delete_column: str = "is_deleted"
    associations: tuple[str, ...] = ()


# Contacts keep their modification time in `lastmodifieddate`; the other objects in
# `hs_lastmodifieddate` (HubSpot's search API documentation, "Search the CRM").
OBJECTS = {
    obj.table: obj
    for obj in (
        HubSpotObject("company", "companies", "hs_lastmodifieddate"),
        HubSpotObject("contact", "contacts", "lastmodifieddate",
                      soft_delete_column="_fivetran_deleted"),
        HubSpotObject("deal", "deals", "hs_lastmodifieddate", key="deal_id",
                      associations=("company", "contact")),
        HubSpotObject("line_item", "line_items", "hs_lastmodifieddate",
                      associations=("deal",)),
        HubSpotObject("ticket", "tickets", "hs_lastmodifieddate",
                      associations=("company", "contact", "deal")),
    )
}
_API_NAMES = {obj.table: obj.api_name for obj in OBJECTS.values()}
# Fivetran's deal table names three properties as columns of their own.
_DEAL_COLUMNS = {"pipeline": "deal_pipeline_id", "dealstage": "deal_pipeline_stage_id",
                 "hubspot_owner_id": "owner_id"}


def _error_text(data: Any, raw: str) -> str:
    if isinstance(data, dict) and data.get("message"):
        category = data.get("category") or data.get("errorType")
        return f"{data['message']} ({category})" if category else str(data["message"])
    return raw[:300] or "no error text"


class HubSpotConnector(Connector):
    """Companies, contacts, deals, line items and tickets, with their associations."""

    source = "hubspot"
    streams = (*OBJECTS, "owner", "deal_pipeline", "ticket_pipeline")

    def __init__(
        self, client: HttpClient, landing_dir: Path, cursors: CursorStore, page_size: int = 100
    ) -> None:
        super().__init__(client, landing_dir, cursors, min(page_size, 100))
        self._properties: dict[str, dict[str, str]] = {}

    @classmethod
    def from_env(
        cls, landing_dir: Path, cursors: CursorStore, env: Mapping[str, str] | None = None,
        page_size: int | None = None,
        **client_options: Any,
    ) -> HubSpotConnector:
        """Q2C_HUBSPOT_TOKEN (private app token), Q2C_HUBSPOT_URL (default the public API)."""
        values = read_env(PROVIDER, {
            "token": EnvValue("Q2C_HUBSPOT_TOKEN", what="a private app access token", secret=True),
            "url": EnvValue("Q2C_HUBSPOT_URL", "https://api.hubapi.com"),
        }, env)
        client_options.setdefault("limiter", RateLimiter(rate=9, burst=10))
        client = HttpClient(
            provider=PROVIDER, base_url=values["url"],
            headers={"Authorization": f"Bearer {values['token']}",
                     "Accept": "application/json"},
            auth_hint=("Set Q2C_HUBSPOT_TOKEN to the access token of a HubSpot private app "
                       "that has the crm.objects.<object>.read scopes."),
            error_text=_error_text, secrets=(values["token"],), **client_options,
        )
        return cls(client, landing_dir, cursors, page_size or 100)

    def pages(self, stream: str, state: dict[str, Any]) -> Iterator[Page]:
        check = PageCheck(PROVIDER, stream)
        if stream == "owner":
            yield from self._owners(check)
            return
        if stream.endswith("_pipeline"):
            yield from self._pipelines(stream.removesuffix("_pipeline"), check)
            return
        obj = OBJECTS[stream]
        long_url = len(",".join(self._property_types(obj, check))) > LIST_PROPERTIES_LIMIT
        if (state.get("high_water") or long_url) and "pending" not in state:
            yield from self._search(obj, state, check)
        else:
            yield from self._list_all(obj, state, check)

    def _property_types(self, obj: HubSpotObject, check: PageCheck) -> dict[str, str]:
        if obj.table not in self._properties:
            where = f"GET /crm/v3/properties/{obj.api_name}"
            reply = self.client.get(f"/crm/v3/properties/{obj.api_name}")
            results = check.items(check.body(reply.data, where), "results", where)
            self._properties[obj.table] = {
                check.text(p, "name", where, n): str(p.get("type") or "string")
                for n, p in enumerate(results, start=1)
            }
        return self._properties[obj.table]

    def _records(self, obj: HubSpotObject, reply: Reply, where: str,
                 check: PageCheck) -> tuple[dict, list[tuple[dict, str, str]]]:
        """The answer's body and its records, each with its checked id and moment."""
        body = check.body(reply.data, where)
        records = check.items(body, "results", where)
        return body, [(record, check.text(record, "id", where, n),
                       self._moment(obj, record, where, n, check))
                      for n, record in enumerate(records, start=1)]

    def _list_all(self, obj: HubSpotObject, state: dict[str, Any],
                  check: PageCheck) -> Iterator[Page]:
        """Every live object, paged by `after`; the mark is committed when the list ends.

        The list is ordered by id, not by modification time, so until it ends the state
        keeps the page token and the mark seen so far (`pending`). The final mark is no later
        than the moment the list started (the first answer's Date header): an object changed
        while the list ran is found again by the next search.
        """
        pending = dict(state.get("pending") or {})
        seen = Watermark.from_state(pending)
        properties = self._property_types(obj, check)
        after = pending.get("after")
        if after:
            check.follow(after, "paging cursor `after`")
        started = pending.get("started")
        where = f"GET /crm/v3/objects/{obj.api_name}"
        while True:
            params = {"limit": self.page_size, "properties": ",".join(properties),
                      "archived": "false"}
            if after:
                params["after"] = after
            reply = self.client.get(f"/crm/v3/objects/{obj.api_name}", params)
            started = started or _reply_time(reply)
            body, entries = self._records(obj, reply, where, check)
            for _, record_id, moment in entries:
                seen.advance(record_id, moment)
            after = _next_after(body, where, check)
            if after:
                check.follow(after, "paging cursor `after`")
                next_state = {"pending": {**seen.to_state(), "after": after,
                                          "started": started}}
            else:
                next_state = _finished(seen, started)
            records = [record for record, _, _ in entries]
            yield Page(self._batches(obj, records, check), next_state, len(records))
            if not after:
                return

    def _search(self, obj: HubSpotObject, state: dict[str, Any],
                check: PageCheck) -> Iterator[Page]:
        """Objects modified at or after the mark, oldest first.

        After a page that landed something the search starts again from the new mark rather
        than following `after`, which is an offset: an object modified during the pull moves
        to the end of the results and would shift the offset past one not yet read.
        """
        mark = Watermark.from_state(state)
        properties = self._property_types(obj, check)
        where = f"POST /crm/v3/objects/{obj.api_name}/search"
        after = None
        while True:
            since = int(parse_instant(mark.value).timestamp() * 1000) if mark.value else 0
            body: dict[str, Any] = {
                "filterGroups": [{"filters": [{
                    "propertyName": obj.modified_property, "operator": "GTE",
                    "value": str(since),
                }]}],
                "sorts": [{"propertyName": obj.modified_property, "direction": "ASCENDING"}],
                "properties": list(properties),
                "limit": self.page_size,
            }
            if after:
                body["after"] = after
            reply = self.client.post(f"/crm/v3/objects/{obj.api_name}/search", body)
            answer, entries = self._records(obj, reply, where, check)
            fresh = []
            for record, record_id, moment in entries:
                if not mark.seen(record_id, moment):
                    fresh.append(record)
                    mark.advance(record_id, moment)
            yield Page(self._batches(obj, fresh, check), mark.to_state(), len(fresh))
            next_after = _next_after(answer, where, check)
            if not next_after:
                return
            if fresh:
                # A new mark starts a new search, whose offsets begin again.
                check.forget_cursors()
                after = None
            else:
                check.follow(next_after, "paging cursor `after`")
                after = next_after

    def _moment(self, obj: HubSpotObject, record: dict, where: str, number: int,
                check: PageCheck) -> str:
        properties = record.get("properties") or {}
        if not isinstance(properties, dict):
            raise check.fail(f"record {number} in the answer of {where} has `properties` "
                             "that are not an object")
        value = properties.get(obj.modified_property) or record.get("updatedAt")
        return check.moment(value, obj.modified_property, where, number)

    def _batches(self, obj: HubSpotObject, records: list[dict],
                 check: PageCheck) -> list[TableBatch]:
        if not records:
            return []
        shape = table_shape("hubspot", obj.table, (obj.key,), obj.soft_delete_column)
        types = self._property_types(obj, check)
        synced = synced_now()
        with check.reading(f"the {obj.api_name} page"):
            rows = [self._row(obj, shape, types, record, synced) for record in records]
        batches = [TableBatch(shape, rows)]
        ids = [str(record["id"]) for record in records]
        for target in obj.associations:
            batches.append(self._associations(obj, target, ids, synced, check))
        return batches

    def _row(self, obj: HubSpotObject, shape: TableShape, types: dict[str, str],
             record: dict, synced: str) -> dict[str, str | None]:
        row: dict[str, str | None] = {obj.key: str(record["id"])}
        properties = record.get("properties") or {}
        for name, value in properties.items():
            if types.get(name) == "datetime" and value not in (None, ""):
                value = utc_text(value)
            row[f"property_{name}"] = text(value)
        if obj.table == "deal":
            for name, column in _DEAL_COLUMNS.items():
                row[column] = text(properties.get(name))
        mark_deleted(row, shape, bool(record.get("archived")), obj.soft_delete_column)
        row["_fivetran_synced"] = synced
        return row

    def _associations(
        self, obj: HubSpotObject, target: str, ids: list[str], synced: str,
        check: PageCheck,
    ) -> TableBatch:
        """The page's associations to `target`; they replace those landed for these ids."""
        from_column, to_column = f"{obj.table}_id", f"{target}_id"
        name = f"{obj.table}_{target}"
        shape = table_shape("hubspot", name, (from_column, to_column, "type_id"))
        path = f"/crm/v4/associations/{obj.api_name}/{_API_NAMES[target]}/batch/read"
        reply = self.client.post(path, {"inputs": [{"id": i} for i in ids]})
        rows = []
        results = check.items(check.body(reply.data, f"POST {path}"), "results", f"POST {path}")
        with check.reading(f"POST {path}"):
            for result in results:
                for link in result.get("to") or []:
                    for kind in link.get("associationTypes") or []:
                        rows.append({
                            from_column: str(result["from"]["id"]),
                            to_column: str(link["toObjectId"]),
                            "type_id": text(kind.get("typeId")),
                            "category": text(kind.get("category")),
                            "_fivetran_synced": synced,
                        })
        return TableBatch(shape, rows, replace_column=from_column, replace_ids=ids)


    def _owners(self, check: PageCheck) -> Iterator[Page]:
        """Every owner, each pull (owners are few and carry no modification filter)."""
        shape = table_shape("hubspot", "owner", ("owner_id",))
        where = "GET /crm/v3/owners"
        after = None
        while True:
            params: dict[str, Any] = {"limit": self.page_size}
            if after:
                params["after"] = after
            reply = self.client.get("/crm/v3/owners", params)
            synced = synced_now()
            body = check.body(reply.data, where)
            owners = check.items(body, "results", where)
            for number, owner in enumerate(owners, start=1):
                check.text(owner, "id", where, number)
            with check.reading(where):
                rows = [{
                    "owner_id": str(owner["id"]), "email": text(owner.get("email")),
                    "first_name": text(owner.get("firstName")),
                    "last_name": text(owner.get("lastName")), "type": text(owner.get("type")),
                    "active_user_id": text(owner.get("userId")),
                    "created_at": _owner_time(owner, "createdAt", where, check),
                    "updated_at": _owner_time(owner, "updatedAt", where, check),
                    "_fivetran_synced": synced,
                } for owner in owners]
            after = _next_after(body, where, check)
            if after:
                check.follow(after, "paging cursor `after`")
            yield Page([TableBatch(shape, rows)] if rows else [], {}, len(rows))
            if not after:
                return

    def _pipelines(self, kind: str, check: PageCheck) -> Iterator[Page]:
        """Every pipeline of deals or tickets and its stages, each pull.

        Lands `<kind>_pipeline` and `<kind>_pipeline_stage`. A deal stage is closed when its
        metadata says `isClosed`, and won when it is closed with probability 1 (HubSpot's
        own rule for closed won); a ticket stage is closed when its `ticketState` is CLOSED.
        """
        where = f"GET /crm/v3/pipelines/{kind}s"
        reply = self.client.get(f"/crm/v3/pipelines/{kind}s")
        results = check.items(check.body(reply.data, where), "results", where)
        synced = synced_now()
        pipeline_shape = table_shape("hubspot", f"{kind}_pipeline", ("pipeline_id",))
        stage_key = ("pipeline_id", "stage_id") if kind == "ticket" else ("stage_id",)
        stage_shape = table_shape("hubspot", f"{kind}_pipeline_stage", stage_key)
        pipelines, stages = [], []
        with check.reading(where):
            for number, pipeline in enumerate(results, start=1):
                pipelines.append(mark_deleted({
                    "pipeline_id": check.text(pipeline, "id", where, number),
                    "label": text(pipeline.get("label")),
                    "display_order": text(pipeline.get("displayOrder")),
                    "active": text(not pipeline.get("archived", False)),
                    "created_at": utc_text(pipeline.get("createdAt")),
                    "updated_at": utc_text(pipeline.get("updatedAt")),
                    "_fivetran_synced": synced,
                }, pipeline_shape, bool(pipeline.get("archived"))))
                for stage in pipeline.get("stages") or []:
                    stages.append(mark_deleted(
                        _stage_row(kind, pipeline, stage, synced), stage_shape,
                        bool(stage.get("archived")),
                    ))
        batches = [TableBatch(pipeline_shape, pipelines), TableBatch(stage_shape, stages)]
        yield Page([b for b in batches if b.rows], {}, len(pipelines))


def _stage_row(kind: str, pipeline: dict, stage: dict, synced: str) -> dict[str, Any]:
    metadata = stage.get("metadata") or {}
    row: dict[str, Any] = {
        "stage_id": str(stage["id"]), "pipeline_id": str(pipeline["id"]),
        "label": text(stage.get("label")), "display_order": text(stage.get("displayOrder")),
        "active": text(not stage.get("archived", False)),
        "created_at": utc_text(stage.get("createdAt")),
        "updated_at": utc_text(stage.get("updatedAt")), "_fivetran_synced": synced,
    }
    if kind == "deal":
        closed = str(metadata.get("isClosed", "false")).lower() == "true"
        probability = metadata.get("probability")
        row["is_closed"] = text(closed)
        row["probability"] = text(probability)
        row["closed_won"] = text(closed and probability is not None
                                 and Decimal(str(probability)) == 1)
    else:
        state = metadata.get("ticketState")
        row["ticket_state"] = text(state)
        row["is_closed"] = text(state == "CLOSED")
    return row


def _next_after(body: dict[str, Any], where: str, check: PageCheck) -> str | None:
    """The `after` token of the next page, or None on the last page."""
    paging = body.get("paging") or {}
    following = paging.get("next") if isinstance(paging, dict) else None
    following = following or {}
    if not isinstance(following, dict):
        raise check.fail(f"`paging.next` in the answer of {where} is not an object")
    after = following.get("after")
    return None if after in (None, "") else str(after)


def _owner_time(owner: dict, name: str, where: str, check: PageCheck) -> str | None:
    value = owner.get(name)
    if value in (None, ""):
        return None
    check.moment(value, name, where, 0)
    return utc_text(value)


def _reply_time(reply: Reply) -> str | None:
    value = reply.headers.get("Date")
    if not value:
        return None
    try:
        return cursor_text(email.utils.parsedate_to_datetime(value))
    except (TypeError, ValueError):
        return None


def _finished(seen: Watermark, started: str | None) -> dict[str, Any]:
    """The mark after a full list: the latest change seen, but no later than the start."""
    if seen.value is None:
        mark = Watermark(started, set()) if started else Watermark()
    elif started and started < seen.value:
        mark = Watermark(started, set())
    else:
        mark = seen
    return mark.to_state()
