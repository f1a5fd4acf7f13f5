"""CMS wiring: one publish-event sensor per configured source, and the reconcile schedule.

Publish events reach `q2c cms events serve`, which verifies them and keeps each in
`$Q2C_HOME/cms/inbox/<source>/`. The sensor of a source takes the waiting events, at most
`MAX_EVENTS_PER_TICK` a tick, each verified again and checked against the API
(`q2c.content.cms.events`): the store then holds what the API returns. When an event
changed the store, the sensor asks for a run of the source's content asset (changes only,
no full reconcile), keyed by the last event file, so its metadata shows the new versions.
The schedule reconciles every source every four hours, catching events that never came.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.content import cms_asset_key
from orchestration.resources import Q2CSettings
from q2c.content.cms import build_cms_connector
from q2c.content.cms.events import pending_events, take_inbox_file
from q2c.content.cms.store import CmsStore
from q2c.settings import load_settings

MAX_EVENTS_PER_TICK = 25
CMS_RECONCILE_JOB_NAME = "cms_reconcile"


def _op_name(source: str) -> str:
    return "__".join(cms_asset_key(source).path)


def build_event_sensor(source: str) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"cms_{source}_events",
        asset_selection=[cms_asset_key(source)],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Takes {source} publish events from the inbox: verifies each, re-fetches the "
            "item through the API and records what the API returns; starts a content run "
            "when something changed."
        ),
    )
    def cms_events(context: dg.SensorEvaluationContext, q2c: Q2CSettings):
        settings = q2c.load()
        waiting = pending_events(settings.cms_dir, source)
        if not waiting:
            return dg.SkipReason(f"no {source} publish events waiting")
        store = CmsStore.from_settings(settings)
        connector = build_cms_connector(source, settings)
        changed, taken = [], waiting[:MAX_EVENTS_PER_TICK]
        for path in taken:
            for outcome in take_inbox_file(connector, store, path, dt.datetime.now(dt.UTC)):
                context.log.info("cms %s event %s: %s %s (%s)", source, path.name,
                                 outcome.outcome, outcome.external_id or "", outcome.detail)
                if outcome.changed:
                    changed.append(path.name)
        if not changed:
            return dg.SkipReason(f"{len(taken)} {source} event(s) taken; nothing changed")
        return dg.RunRequest(
            run_key=f"cms-{source}-{changed[-1]}",
            asset_selection=[cms_asset_key(source)],
            run_config={"ops": {_op_name(source): {"config": {"reconcile": False}}}},
            tags={"q2c/cms-source": source, "q2c/cms-events": str(len(changed))},
        )

    return cms_events


def build_event_sensors(sources: tuple[str, ...]) -> list[dg.SensorDefinition]:
    return [build_event_sensor(source) for source in sources]


def build_reconcile_job(sources: tuple[str, ...]) -> dg.UnresolvedAssetJobDefinition | None:
    if not sources:
        return None
    return dg.define_asset_job(
        CMS_RECONCILE_JOB_NAME,
        selection=dg.AssetSelection.assets(*(cms_asset_key(source) for source in sources)),
        description=(
            "Sync and reconcile every configured CMS source: what changed since each "
            "cursor, then every known item, so a missed publish event is caught."
        ),
        executor_def=dg.in_process_executor,
        tags={"q2c/job": "cms-reconcile"},
    )


_sources = load_settings().cms_sources
cms_event_sensors = build_event_sensors(_sources)
cms_reconcile_job = build_reconcile_job(_sources)
cms_reconcile_schedules = (
    [
        dg.ScheduleDefinition(
            name="cms_reconcile_schedule",
            job=cms_reconcile_job,
            cron_schedule="15 */4 * * *",
            execution_timezone="Europe/Berlin",
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description="Every four hours at a quarter past: reconcile every CMS source.",
        )
    ]
    if cms_reconcile_job is not None
    else []
)
cms_reconcile_jobs = [cms_reconcile_job] if cms_reconcile_job is not None else []
