"""The nightly job and its schedule, and the run policies the assets carry.

The policies live here, beside the job they shape, so every asset module takes the same ones:
retries for the steps that talk to other systems, and the tag and pool that keep delivery to
one run at a time (the instance's `concurrency` settings give them their limits, see
`orchestration/dagster-postgres.yaml`).
"""

from __future__ import annotations

import dagster as dg

from q2c.settings import Settings, load_settings

NIGHTLY_JOB_NAME = "nightly_quote_to_cash"

# Steps that talk to another system over the network (API pulls, the CMS sync, the outbox's
# sends, bounce and acknowledgement reading) run again after a failure, up to three times:
# Dagster waits (2^n - 1) x 20 s before retry n, give or take 20 s at random, so about 20,
# 60 and 140 s, and the retries of many runs do not hit a recovering provider together.
# Failures a retry cannot fix (refused credentials, a changed audit trail) say so and stop.
NETWORK_RETRY = dg.RetryPolicy(
    max_retries=3, delay=20, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# A run that delivers carries this tag, and the delivering step is in this pool. The
# instance limits both to one (`tag_concurrency_limits`, `pools`), so a backfill of many
# days and the nightly run never send through the mail relay at the same time.
DELIVERY_TAG = "q2c/delivery"
DELIVERY_POOL = "q2c_delivery"

nightly_job = dg.define_asset_job(
    NIGHTLY_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description=(
        "Ingest CRM and ERP tables, rebuild the dbt models and KPI marts, check invoice "
        "quality, render the invoice PDFs and e-invoices of the invoices that passed, screen "
        "them for review and deliver them through the outbox, then build the delivery marts "
        "and reconcile ERP, q2c and gateway balances (summary mailed to finance)."
    ),
    executor_def=dg.in_process_executor,
    tags={"q2c/job": "nightly", DELIVERY_TAG: "outbox"},
)


def build_nightly_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The nightly schedule at `nightly_at` (Q2C_NIGHTLY_AT, default 02:00) in the seller's
    time zone (`seller.timezone`), so "by morning" means the seller's morning.

    The job holds the documents asset, which is partitioned by issue date; the schedule
    asks for no partition, so each night renders every invoice that is due (see the
    asset). A backfill of some days is launched on the asset, not on this job. Dagster
    needs the cron and zone when it loads the definitions, so they are read then.
    """
    at = settings.nightly_at
    return dg.ScheduleDefinition(
        name="nightly_quote_to_cash_schedule",
        job=nightly_job,
        cron_schedule=f"{at.minute} {at.hour} * * *",
        execution_timezone=settings.seller.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Every night at {at:%H:%M} in the seller's time zone ({settings.seller.timezone})"
            ": ingest, rebuild, check, render, deliver and reconcile."
        ),
    )


nightly_schedule = build_nightly_schedule(load_settings())
