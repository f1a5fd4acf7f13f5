"""The one `Definitions` of q2c: every asset, check, resource, job and schedule.

Cross-cutting policy is applied here once: owners and kinds by layer for the Python assets
(dbt models take their owners from `dbt_project.yml`).
"""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from assets.cash import (
    collection_holds,
    dunning_reminders,
    reconciliation_checks,
    reconciliation_summary,
)
from assets.content import cms_assets
from assets.delivery import outbox, review_queue
from assets.documents import einvoices, invoice_documents
from assets.freshness import freshness_checks
from assets.ingest import raw_assets
from assets.portal import portal_records
from assets.quality import invoice_quality_holds, quality_checks
from assets.run_report import kpi_trend_charts, run_summary
from assets.transform import q2c_dbt_models, q2c_delivery_marts
from orchestration.alerts import raw_freshness_job, raw_freshness_schedule, run_failure_alert
from orchestration.celery_jobs import invoice_batch_fanout
from orchestration.cms import cms_event_sensors, cms_reconcile_jobs, cms_reconcile_schedules
from orchestration.dbt_project import DBT_EXECUTABLE, q2c_dbt_project
from orchestration.jobs import nightly_job, nightly_schedule
from orchestration.resources import Q2CSettings
from orchestration.sensors import ingest_drops_job, landing_file_sensor

_OWNERS_BY_GROUP = {
    "ingest": ["team:data-platform"],
    "quality": ["team:data-platform", "team:finance-ops"],
    "documents": ["team:finance-ops"],
    "delivery": ["team:finance-ops"],
    "content": ["team:finance-ops"],
}


def _apply_owners(spec: dg.AssetSpec) -> dg.AssetSpec:
    owners = _OWNERS_BY_GROUP.get(spec.group_name or "")
    if not owners or spec.owners:
        return spec
    return spec.replace_attributes(owners=owners)


python_assets = dg.map_asset_specs(
    _apply_owners,
    [*raw_assets, *cms_assets, invoice_quality_holds, invoice_documents, einvoices, review_queue,
     outbox],
)

defs = dg.Definitions(
    assets=[*python_assets, q2c_dbt_models, q2c_delivery_marts, run_summary, kpi_trend_charts,
            reconciliation_summary, collection_holds, dunning_reminders, portal_records],
    asset_checks=[*quality_checks, *freshness_checks, reconciliation_checks],
    jobs=[nightly_job, ingest_drops_job, *cms_reconcile_jobs, raw_freshness_job,
          invoice_batch_fanout],
    schedules=[nightly_schedule, *cms_reconcile_schedules, raw_freshness_schedule],
    sensors=[landing_file_sensor, *cms_event_sensors, run_failure_alert],
    resources={
        "q2c": Q2CSettings(),
        "dbt": DbtCliResource(
            project_dir=q2c_dbt_project(), dbt_executable=str(DBT_EXECUTABLE)
        ),
    },
)
