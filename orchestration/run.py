"""Run the nightly job in this process, the way `q2c run` and the tests do."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
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

    settings = load_settings()
    with _exclusive_run(settings.home):
        return _execute(defs, instance)


class RunInProgressError(RuntimeError):
    """Another nightly run holds this Q2C_HOME."""


@contextmanager
def _exclusive_run(home: Path) -> Iterator[None]:
    """One nightly run per Q2C_HOME at a time: a second one stops before touching anything."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "nightly.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RunInProgressError(
                f"another q2c run is in progress on {home} (lock {lock.name}); wait for it to "
                "finish, or use another Q2C_HOME"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _execute(defs, instance: dg.DagsterInstance | None) -> NightlyResult:
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
        summary = build_summary(conn, settings, result.run_id)
    summary += _failed_checks(result)
    if not result.success:
        summary += "\n\nThe run FAILED:" + "".join(
            f"\n  step {event.step_key}: {_failure_message(event)}"
            for event in result.all_events if event.is_step_failure
        ) + "\nSee the run in the Dagster UI (make ui) for the full event log."
    return NightlyResult(
        success=result.success,
        run_id=result.run_id,
        summary=summary,
        summary_path=write_summary(summary, settings.home),
        result=result,
    )


def _failed_checks(result: dg.ExecuteInProcessResult) -> str:
    """The asset checks this run failed, by asset and check, so none hides in the UI."""
    failed = sorted(
        (evaluation.asset_key.to_user_string(), evaluation.check_name,
         evaluation.severity.value.lower())
        for evaluation in result.get_asset_check_evaluations() if not evaluation.passed
    )
    lines = [f"  {asset}: {check} ({severity})" for asset, check, severity in failed]
    return f"\n\nFailed asset checks of this run ({len(failed)}):\n" + (
        "\n".join(lines) or "  none")


def _failure_message(event: dg.DagsterEvent) -> str:
    data = event.step_failure_data
    if data is None:
        return "failed"
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error is not None and error.cause is not None and "Error occurred while" in error.message:
        error = error.cause
    return (error.message.strip().splitlines() or ["failed"])[-1] if error else "failed"
