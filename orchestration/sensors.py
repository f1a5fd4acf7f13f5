"""The file-drop sensor and the ingest job it starts.

Each tick places the new drops (`q2c.sources.file_drops`) into the landing folder and asks
for one ingest run per batch of placed files, selecting the raw assets of the sources those
files belong to. The run key is the identity of the files (path and ETag, or size and
modification time), so the same files never start two runs. The sensor's cursor is the last
batch it asked a run for: a tick that fails after placing files asks for their run on the
next tick, and Dagster drops a run key it has already seen.
"""

from __future__ import annotations

import dagster as dg

from assets.ingest import raw_asset_key
from orchestration.resources import Q2CSettings
from q2c.sources.file_drops import DropManifest, drop_location, open_drops, process_drops
from q2c.sources.schema import tables_of

INGEST_DROPS_JOB_NAME = "ingest_file_drops"

ingest_drops_job = dg.define_asset_job(
    INGEST_DROPS_JOB_NAME,
    selection=dg.AssetSelection.groups("ingest"),
    description=(
        "Load the raw tables of the sources whose files were just dropped and placed in the "
        "landing folder."
    ),
    executor_def=dg.in_process_executor,
    tags={"q2c/job": "file-drops"},
)


def _source_assets(sources: list[str]) -> list[dg.AssetKey]:
    """Every raw asset of each source: a source's tables load together in one step."""
    return [raw_asset_key(source, table.name) for source in sources
            for table in tables_of(source)]


@dg.sensor(
    job=ingest_drops_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def landing_file_sensor(context: dg.SensorEvaluationContext, q2c: Q2CSettings):
    """Places new file drops (folder or S3, `Q2C_FILE_DROPS`) and starts their ingest."""
    settings = q2c.load()
    store = open_drops(drop_location(settings), settings.s3_endpoint_url)
    manifest = DropManifest(settings.ops_store)
    results, _ = process_drops(store, manifest, settings.landing_dir)
    for result in results:
        if result.status == "quarantined":
            context.log.warning("file drop %s quarantined: %s", result.file.path,
                                result.message)
        else:
            context.log.info("file drop %s: %s", result.file.path, result.message)

    requested = int(context.cursor or 0)
    batches = manifest.batches_after(store.location, requested)
    if not batches:
        return dg.SkipReason(f"no new file drops in {store.location}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=batch["run_key"],
                asset_selection=_source_assets(batch["sources"]),
                tags={"q2c/file-drop-batch": str(batch["batch_id"]),
                      "q2c/sources": ",".join(batch["sources"])},
            )
            for batch in batches
        ],
        cursor=str(batches[-1]["batch_id"]),
    )
