"""Watching the runs: the failure alert and the freshness checks between nights.

`run_failure_alert` looks at every run of this code location that fails (the nightly job,
file-drop ingests, CMS reconciles, backfills) and sends one alert by email and by webhook
(`q2c.alerts`). It runs wherever `dagster-daemon` runs and is on by default; without
`Q2C_ALERT_EMAIL` or `Q2C_ALERT_WEBHOOK_URL` it only logs that nobody was told. When a
channel fails, the sensor tick fails with the reason; Dagster does not repeat a tick for the
same run, so the tick's error in the UI is the record of an alert that did not go out.

`raw_freshness_job` runs the raw tables' freshness checks alone, so a sync that stops
between nights is seen before the next one; its schedule is off until turned on.
"""

import datetime as dt

import dagster as dg

from assets.freshness import freshness_checks
from orchestration.resources import Q2CSettings
from q2c.alerts import AlertError, FailedStep, RunFailure, run_url, send_alert, shorten

FRESHNESS_JOB_NAME = "raw_freshness_checks"


def step_failure_message(event: dg.DagsterEvent) -> str:
    """The error of a failed step as a person reads it: the Failure's description, or the
    innermost error Dagster wrapped ("Error occurred while ...")."""
    data = event.step_failure_data
    if data is None:
        return "failed"
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error is not None and error.cause is not None and "Error occurred while" in error.message:
        error = error.cause
    return error.message.strip() if error is not None else "failed"


def run_failure_of(context: dg.RunFailureSensorContext, dagster_url: str) -> RunFailure:
    """The facts of a failed run, read from the instance the sensor watches."""
    run = context.dagster_run
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record is not None and record.end_time else None
    failed_at = (dt.datetime.fromtimestamp(ended, dt.UTC) if ended
                 else dt.datetime.now(dt.UTC))
    steps = tuple(
        FailedStep(event.step_key or "run", shorten(step_failure_message(event)))
        for event in context.get_step_failure_events()
    )
    return RunFailure(
        run_id=run.run_id,
        job_name=run.job_name,
        failed_steps=steps,
        run_url=run_url(dagster_url, run.run_id),
        failed_at=failed_at,
        message=shorten(context.failure_event.message or ""),
        tags={key: value for key, value in run.tags.items() if not key.startswith(".")},
    )


@dg.run_failure_sensor(
    name="run_failure_alert",
    description=(
        "Alerts by email (Q2C_ALERT_EMAIL) and JSON webhook (Q2C_ALERT_WEBHOOK_URL) when any "
        "run of this code location fails: run id, job, failed steps and their errors, link."
    ),
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alert(context: dg.RunFailureSensorContext, q2c: Q2CSettings) -> None:
    """Send the alert of one failed run; raise when a channel could not take it."""
    settings = q2c.load()
    failure = run_failure_of(context, settings.dagster_url)
    if not settings.alert_emails and not settings.alert_webhook_url:
        context.log.warning(
            "run %s of %s failed and no alert was sent: set Q2C_ALERT_EMAIL or "
            "Q2C_ALERT_WEBHOOK_URL", failure.run_id, failure.job_name)
        return

    outcome = send_alert(failure, settings)
    if outcome.problems:
        raise AlertError(" | ".join(outcome.problems))
    context.log.info("run %s of %s failed; alert mailed to %d address(es), webhook %s",
                     failure.run_id, failure.job_name, len(outcome.emailed),
                     outcome.webhook_status or "not set")


raw_freshness_job = dg.define_asset_job(
    FRESHNESS_JOB_NAME,
    selection=dg.AssetSelection.checks(*freshness_checks),
    description="Judge how late each raw table's last sync is, without loading anything.",
    executor_def=dg.in_process_executor,
    tags={"q2c/job": "freshness"},
)

raw_freshness_schedule = dg.ScheduleDefinition(
    name="raw_freshness_checks_schedule",
    job=raw_freshness_job,
    cron_schedule="15 */4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every four hours: the raw tables' freshness checks between nightly runs.",
)
