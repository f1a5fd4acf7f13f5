"""Freshness of every raw table, judged by the sync time in its rows (`q2c.freshness`).

One check per raw table, `sync_is_fresh`, gathered into one check per source: it passes when
the newest `_fivetran_synced` (or the landing file's time) is within the source's warn limit,
fails with severity WARN past it and with severity ERROR past the fail limit. Dagster's
built-in freshness checks judge when an asset was last materialized; q2c materializes a
raw table each night even when it copies an old export again, so those would call stale data
fresh. The checks never block: late data is still the best data there is, and the night
goes on while the check says how late it is.
"""

import datetime as dt

import dagster as dg

from assets.ingest import raw_asset_key
from orchestration.resources import Q2CSettings
from q2c.freshness import FRESH, VERY_LATE, Freshness, assess, last_syncs, reference_time
from q2c.settings import load_settings
from q2c.sources.schema import tables_of
from q2c.warehouse import WarehouseBusyError, connect

CHECK_NAME = "sync_is_fresh"
# Another process may hold the DuckDB file (the nightly run): wait and try again.
_BUSY_RETRIES = 3
_BUSY_WAIT_SECONDS = 120


def _severity(verdict: Freshness) -> dg.AssetCheckSeverity:
    return (dg.AssetCheckSeverity.ERROR if verdict.status == VERY_LATE
            else dg.AssetCheckSeverity.WARN)


def _result(source: str, table: str, verdict: Freshness,
            at: dt.datetime) -> dg.AssetCheckResult:
    last = verdict.last
    metadata: dict[str, object] = {
        "status": verdict.status,
        "checked_at": dg.MetadataValue.timestamp(at),
        "warn_after_hours": verdict.limits.warn_after.total_seconds() / 3600,
        "fail_after_hours": verdict.limits.fail_after.total_seconds() / 3600,
        "rows": last.rows,
        "sync_time_from": f"{last.basis} {last.where}".strip() if last.basis else "none",
    }
    if last.synced_at is not None:
        metadata["last_synced_at"] = dg.MetadataValue.timestamp(last.synced_at)
    if verdict.age is not None:
        metadata["age_hours"] = round(verdict.age.total_seconds() / 3600, 2)
    return dg.AssetCheckResult(
        asset_key=raw_asset_key(source, table),
        check_name=CHECK_NAME,
        passed=verdict.status == FRESH,
        severity=_severity(verdict),
        description=verdict.message,
        metadata=metadata,
    )


def _build_source_check(source: str) -> dg.AssetChecksDefinition:
    specs = [
        dg.AssetCheckSpec(
            CHECK_NAME, asset=raw_asset_key(source, table.name), blocking=False,
            description=("The newest _fivetran_synced (or the landing file's time) is recent: "
                         "WARN when late, ERROR when very late (limits: freshness setting)."),
        )
        for table in tables_of(source)
    ]

    @dg.multi_asset_check(specs=specs, name=f"freshness_{source}")
    def freshness(context: dg.AssetCheckExecutionContext, q2c: Q2CSettings):
        """Judge how late each raw table of the source is, from the sync time in its rows."""
        settings = q2c.load()
        at = reference_time(settings.as_of, dt.datetime.now(dt.UTC))
        try:
            with connect(settings.warehouse_path, read_only=True) as conn:
                syncs = last_syncs(conn, source)
        except WarehouseBusyError as exc:
            raise dg.RetryRequested(max_retries=_BUSY_RETRIES,
                                    seconds_to_wait=_BUSY_WAIT_SECONDS) from exc

        limits = settings.freshness.for_source(source)
        for table, last in zip(tables_of(source), syncs, strict=True):
            verdict = assess(last, limits, at)
            if verdict.status != FRESH:
                context.log.warning("freshness: %s", verdict.message)
            yield _result(source, table.name, verdict, at)

    return freshness


def build_freshness_checks(sources: tuple[str, ...]) -> list[dg.AssetChecksDefinition]:
    """One freshness check per enabled source, covering each of its raw tables."""
    return [_build_source_check(source) for source in sources if tables_of(source)]


freshness_checks = build_freshness_checks(load_settings().sources)
