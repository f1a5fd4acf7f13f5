"""The customer portal's records, copied into the warehouse before dbt reads them.

The portal writes its events (every view, download, dispute step, payment and sign-in) and
its disputes into the operational store while it serves customers. `portal_records` copies
them, with the credit-note requests of disputes resolved by a credit, into `q2c_ops` before
the nightly dbt build, so the dispute and self-service KPIs and the dunning mart see
tonight's state. A deployment without a portal (nothing in the store, nothing copied
before) costs one look at the store.
"""

import dagster as dg

from orchestration.resources import Q2CSettings
from q2c import opsdb
from q2c.portal.checkout import ATTEMPTS_TABLE, confirm_payments
from q2c.portal.disputes import CREDIT_REQUESTS_TABLE, DISPUTES_TABLE, export_disputes
from q2c.portal.events import EVENTS_TABLE, export_events
from q2c.warehouse import OPS_SCHEMA, connect

# The keys the dbt translator (assets/transform.py) gives the ops source q2c_portal, so the
# staging models reading the copies are built after them.
PORTAL_EVENTS_KEY = dg.AssetKey([OPS_SCHEMA, EVENTS_TABLE])
PORTAL_DISPUTES_KEY = dg.AssetKey([OPS_SCHEMA, DISPUTES_TABLE])
CREDIT_NOTE_REQUESTS_KEY = dg.AssetKey([OPS_SCHEMA, CREDIT_REQUESTS_TABLE])
_TABLES = (EVENTS_TABLE, DISPUTES_TABLE, CREDIT_REQUESTS_TABLE)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(PORTAL_EVENTS_KEY, group_name="ingest", owners=["team:finance-ops"],
                     kinds={"sqlite", "duckdb"},
                     description="Every customer portal event (the audit log and the "
                                 "source of the self-service KPIs), copied from the "
                                 "operational store."),
        dg.AssetSpec(PORTAL_DISPUTES_KEY, group_name="ingest", owners=["team:finance-ops"],
                     kinds={"sqlite", "duckdb"},
                     description="The disputes customers opened in the portal, in their "
                                 "current state, copied from the operational store."),
        dg.AssetSpec(CREDIT_NOTE_REQUESTS_KEY, group_name="ingest",
                     owners=["team:finance-ops"], kinds={"sqlite", "duckdb"},
                     description="The credit notes the ERP team is asked to issue for "
                                 "disputes resolved by a credit, one per dispute."),
    ],
)
def portal_records(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """Copy the portal's events, disputes and credit-note requests into `q2c_ops`."""
    settings = q2c.load()
    with connect(settings.warehouse_path) as conn:
        copied_before = {row[0] for row in conn.execute(
            "select table_name from information_schema.tables where table_schema = ?",
            [OPS_SCHEMA]).fetchall()} & set(_TABLES)
        if not copied_before and not _store_has_records(settings.ops_store):
            context.log.info("no portal records in %s: nothing to copy", settings.ops_store)
            yield from _results(0, 0, 0)
            return
        with opsdb.connect(settings.ops_store) as store:
            confirmed = _confirm_portal_payments(store)
            events = export_events(store, conn)
            disputes = export_disputes(store, conn)
        requests = conn.execute(
            f"select count(*) from {OPS_SCHEMA}.{CREDIT_REQUESTS_TABLE}").fetchone()[0]
    context.log.info("portal records copied to the warehouse: %d events, %d disputes, %d "
                     "credit-note requests; %d portal payments confirmed by webhook since "
                     "the last copy", events, disputes, requests, confirmed)
    yield from _results(events, disputes, int(requests))


def _confirm_portal_payments(store) -> int:
    """Record the payment events of checkouts the webhook confirmed that no customer came
    back to see: the self-service KPIs count every portal payment, not only those."""
    present = store.execute("select 1 from sqlite_master where type = 'table' and name = ?",
                            (ATTEMPTS_TABLE,)).fetchone()
    return len(confirm_payments(store)) if present else 0


def _store_has_records(store_path) -> bool:
    """True when the store holds a portal event or dispute; the store is not created."""
    if not store_path.exists():
        return False
    with opsdb.connect(store_path) as store:
        present = {row[0] for row in store.execute(
            "select name from sqlite_master where type = 'table'")}
        return any(store.execute(f"select 1 from {table} limit 1").fetchone() is not None
                   for table in (EVENTS_TABLE, DISPUTES_TABLE) if table in present)


def _results(events: int, disputes: int, requests: int):
    for key, rows in ((PORTAL_EVENTS_KEY, events), (PORTAL_DISPUTES_KEY, disputes),
                      (CREDIT_NOTE_REQUESTS_KEY, requests)):
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": rows})
