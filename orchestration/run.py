"""Run the nightly job in this process, the way `q2c run` and the tests do."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from orchestration.jobs import NIGHTLY_JOB_NAME
from q2c.report import build_summary, write_summary
from q2c.settings import load_settings
from q2c.warehouse import connect


@dataclass
class NightlyResult:
    success: bool
    run_id: str
    summary: str
    summary_path: Path
    result: dg.ExecuteInProcessResult


def run_nightly(instance: dg.DagsterInstance | None = None) -> NightlyResult:
    """Execute the nightly job in-process against the instance at DAGSTER_HOME.

    Runs land in the same instance `dagster dev` reads, so the UI shows them afterwards. The
    console shows warnings and errors only (`Q2C_LOG_LEVEL=INFO` or `DEBUG` for more); the
    full event log is in the instance either way.
    """
    from orchestration.definitions import defs

    job = defs.resolve_job_def(NIGHTLY_JOB_NAME)
    instance = instance or dg.DagsterInstance.get()
    log_level = os.environ.get("Q2C_LOG_LEVEL", "WARNING").upper()
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )

    settings = load_settings()
    with connect(settings.warehouse_path, read_only=True) as conn:
        summary = build_summary(conn, settings)
    if not result.success:
        failed = [event.step_key for event in result.all_events if event.is_step_failure]
        summary += f"\n\nThe run FAILED in step(s) {', '.join(failed)}; see the Dagster UI."
    return NightlyResult(
        success=result.success,
        run_id=result.run_id,
        summary=summary,
        summary_path=write_summary(summary, settings.home),
        result=result,
    )
