"""Raw layer: landed CSV exports loaded into `raw_<source>` tables in Fivetran's shape.

A source in `pull_sources` is first pulled through its API into the landing folder, so the
night loads what the provider holds now. When the provider is down, the files of the last
pull are loaded instead and the asset says so; refused credentials stop the asset. The
landing step of a pulled source is retried as a network step (`NETWORK_RETRY`).
"""


import dagster as dg

from orchestration.jobs import NETWORK_RETRY
from orchestration.resources import Q2CSettings
from q2c.payments.stripe_landing import land_webhook_objects
from q2c.settings import Settings, load_settings
from q2c.sources.changes import UNCHANGED, load_changed_source
from q2c.sources.connectors import (
    ConnectorError,
    ProviderError,
    TransientError,
    pull,
)
from q2c.sources.landing import blocking_failures, find_table_file, source_folder
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


def _landed_files(settings: Settings, source: str) -> list[str]:
    folder = source_folder(settings.landing_dir, source)
    return [str(path) for table in tables_of(source)
            if (path := find_table_file(folder, table)) is not None]


def _pull_first(context: dg.AssetExecutionContext, settings: Settings,
                source: str) -> dict[str, object]:
    """Pull `source` into the landing folder; the metadata that says how it went.

    A provider that is down (TransientError, ProviderError) must not stop the night when an
    earlier pull landed files: those are loaded, with a warning. Refused or missing
    credentials need a person, and without earlier files there is nothing to load.
    """
    try:
        report = pull(source, settings)
    except (TransientError, ProviderError) as exc:
        said = str(exc).rstrip(". ")
        if not _landed_files(settings, source):
            raise dg.Failure(
                description=(
                    f"The pull of {source} failed and no earlier pull landed files in "
                    f"{source_folder(settings.landing_dir, source)}: {said}. Run again once "
                    f"the provider answers, or remove {source} from Q2C_PULL_SOURCES and "
                    "land its files another way."
                ),
            ) from exc
        context.log.warning("%s: the pull failed (%s); loading the files of the last pull",
                            source, said)
        return {"pulled_records": dg.MetadataValue.json({}),
                "pull_status": f"failed, loaded the files of the last pull: {said}"}
    except ConnectorError as exc:
        raise dg.Failure(
            allow_retries=False,
            description=(
                f"The pull of {source} cannot run: {str(exc).rstrip('. ')}. Set what the "
                "message names (in the environment of the Dagster run), or remove "
                f"{source} from Q2C_PULL_SOURCES."
            ),
        ) from exc
    records = {name: stream.records for name, stream in report.streams.items()}
    context.log.info("%s: pulled %d records into %s", source, sum(records.values()),
                     settings.landing_dir / source)
    return {"pulled_records": dg.MetadataValue.json(records),
            "pull_status": f"ok, {sum(records.values())} records pulled"}


def _land_stripe_webhooks(context: dg.AssetExecutionContext,
                          settings: Settings) -> dict[str, object]:
    """Objects Stripe sent by webhook, written beside the pulled rows (after the pull, so
    the newest state of each object is what loads)."""
    report = land_webhook_objects(settings.ops_store, settings.landing_dir)
    if report.offered:
        context.log.info("stripe: webhook objects offered to %s: %s", report.folder,
                         ", ".join(f"{table} {n}" for table, n in report.offered.items()))
    return {"webhook_rows_offered": dg.MetadataValue.json(report.offered)}


def _build_source_asset(source: str, over_network: bool = False) -> dg.AssetsDefinition:
    @dg.multi_asset(name=f"land_{source}", specs=_raw_specs(source), can_subset=False,
                    retry_policy=NETWORK_RETRY if over_network else None)
    def land(context: dg.AssetExecutionContext, q2c: Q2CSettings):
        settings = q2c.load()
        pulled = (_pull_first(context, settings, source)
                  if source in settings.pull_sources else {})
        if source == "stripe":
            pulled |= _land_stripe_webhooks(context, settings)
        with connect(settings.warehouse_path) as conn:
            loads = load_changed_source(conn, settings.landing_dir, source, context.run_id)

        failures = blocking_failures(loads)
        if failures:
            raise dg.Failure(
                allow_retries=False,
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
                    "reloaded": load.status != UNCHANGED,
                    "dagster/row_count": load.rows_loaded,
                    "rows_read": load.rows_read,
                    "rows_quarantined": load.rows_quarantined,
                    "missing_columns": ", ".join(load.missing_columns) or "none",
                    "message": load.message or "",
                    **pulled,
                },
            )

    return land


def build_raw_assets(
    sources: tuple[str, ...], pull_sources: tuple[str, ...] = ()
) -> list[dg.AssetsDefinition]:
    """One landing asset per enabled source (setting `sources`); others stay out of the UI.

    Only the sources pulled through their API (`pull_sources`) touch the network, so only
    their landing steps are retried.
    """
    return [_build_source_asset(source, source in pull_sources) for source in sources
            if tables_of(source)]


raw_assets = build_raw_assets(load_settings().sources, load_settings().pull_sources)
