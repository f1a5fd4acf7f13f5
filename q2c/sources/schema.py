"""The raw tables q2c reads, in the column names Fivetran's connectors land.

A team that already syncs Salesforce or QuickBooks with a loading tool points q2c at those
tables; q2c's own loaders land the same shape. Only the columns listed here are read
downstream. A landed file may carry more (they are kept); a listed column that is missing is
added as empty and reported, except key columns, without which a row cannot be used.

Each source is enabled per deployment (`sources` in q2c.yaml or `Q2C_SOURCES`, and the dbt
var `q2c_<source>_enabled`); only Salesforce and QuickBooks are on by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from q2c.sources.raw_table import SYNC, RawTable, columns
from q2c.sources.tables import (
    dynamics365,
    hubspot,
    netsuite,
    quickbooks,
    sage_intacct,
    salesforce,
    stripe,
)

__all__ = [
    "CATALOG", "DEFAULT_SOURCES", "DEFAULT_TABLES", "RAW_TABLES", "SOURCES", "SYNC",
    "RawTable", "Source", "columns", "raw_table", "tables_of",
]


@dataclass(frozen=True)
class Source:
    """A system q2c can read: what it is for and the raw tables it lands."""

    name: str
    title: str
    kind: str
    tables: tuple[RawTable, ...]


CATALOG: dict[str, Source] = {
    source.name: source
    for source in (
        Source("salesforce", "Salesforce (CRM)", "crm", salesforce.TABLES),
        Source("hubspot", "HubSpot (CRM)", "crm", hubspot.TABLES),
        Source("quickbooks", "QuickBooks Online (ERP)", "erp", quickbooks.TABLES),
        Source("netsuite", "NetSuite (ERP)", "erp", netsuite.TABLES),
        Source("dynamics365", "Dynamics 365 Finance (ERP)", "erp", dynamics365.TABLES),
        Source("sage_intacct", "Sage Intacct (ERP)", "erp", sage_intacct.TABLES),
        Source("stripe", "Stripe (payments and billing)", "payments", stripe.TABLES),
    )
}

RAW_TABLES: tuple[RawTable, ...] = tuple(t for s in CATALOG.values() for t in s.tables)
SOURCES = tuple(CATALOG)
DEFAULT_SOURCES = ("salesforce", "quickbooks")
# What the demo generator writes and a deployment reads unless told otherwise.
DEFAULT_TABLES: tuple[RawTable, ...] = tuple(
    t for t in RAW_TABLES if t.source in DEFAULT_SOURCES
)


def tables_of(source: str) -> tuple[RawTable, ...]:
    if source not in CATALOG:
        raise KeyError(f"q2c knows no source {source!r}; known: {', '.join(SOURCES)}")
    return CATALOG[source].tables


def raw_table(source: str, name: str) -> RawTable:
    for table in tables_of(source):
        if table.name == name:
            return table
    raise KeyError(f"q2c reads no raw table {source}.{name}")
