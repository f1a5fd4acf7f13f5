"""Raw layer: landed CSV exports loaded into `raw_<source>` tables in Fivetran's shape."""


import dagster as dg

from orchestration.resources import Q2CSettings
from q2c.settings import load_settings
from q2c.sources.landing import blocking_failures, load_source
from q2c.sources.schema import CATALOG, tables_of
from q2c.warehouse import connect


def raw_asset_key(source: str, table: str) -> dg.AssetKey:
    """Raw asset keys mirror the warehouse relation: [raw_<source>, <table>]."""
    return dg.AssetKey([f"raw_{source}", table])


def _raw_specs(source: str) -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            raw_asset_key(source, table.name),
            group_name="ingest",
            kinds={"csv", "duckdb"},
            description=(
                f"The `{table.name}` table of {CATALOG[source].title} as landed, every value "
                f"as text. Key: {', '.join(table.key)}. Rows without a key, with the wrong "
                "number of fields or duplicated are quarantined in q2c_ops.quarantine."
            ),
            metadata={"dagster/table_name": f"raw_{source}.{table.name}"},
        )
        for table in tables_of(source)
    ]


def _build_source_asset(source: str) -> dg.AssetsDefinition:
    @dg.multi_asset(name=f"land_{source}", specs=_raw_specs(source), can_subset=False)
    def land(context: dg.AssetExecutionContext, q2c: Q2CSettings):
        settings = q2c.load()
        with connect(settings.warehouse_path) as conn:
            loads = load_source(conn, settings.landing_dir, source, context.run_id)

        failures = blocking_failures(loads)
        if failures:
            raise dg.Failure(
                description=(
                    "Invoices cannot be printed without these tables, so the night stops here "
                    "(yesterday's tables stay in place): " + " | ".join(failures)
                    + " Fix or re-export the files and run again."
                ),
            )

        for load in loads:
            yield dg.MaterializeResult(
                asset_key=raw_asset_key(source, load.table.name),
                metadata={
                    "file": str(load.file or ""),
                    "status": load.status,
                    "dagster/row_count": load.rows_loaded,
                    "rows_read": load.rows_read,
                    "rows_quarantined": load.rows_quarantined,
                    "missing_columns": ", ".join(load.missing_columns) or "none",
                    "message": load.message or "",
                },
            )

    return land


def build_raw_assets(sources: tuple[str, ...]) -> list[dg.AssetsDefinition]:
    """One landing asset per enabled source (setting `sources`); others stay out of the UI."""
    return [_build_source_asset(source) for source in sources if tables_of(source)]


raw_assets = build_raw_assets(load_settings().sources)
