"""Cash: the nightly reconciliation's checks and its run summary for finance.

dbt builds `core.mart_reconciliation_exceptions` (every difference above the tolerance
between the ERP, q2c's own balances and the gateway) and `core.mart_reconciliation_summary`.
Here each reason code becomes an asset check on the exceptions mart that fails with ERROR
severity while exceptions of that reason exist, and `reconciliation_summary` reads both
marts after the dbt step, attaches counts, amounts and exceptions by reason as metadata and
mails the summary to finance when `Q2C_FINANCE_EMAIL` is set (`q2c.payments.reconciliation`).
The checks do not block: finance needs the summary most on the nights that have exceptions.

Collections: `collection_holds` copies the account owners' holds into the warehouse before
dbt builds `kpi.mart_dunning_actions`; `dunning_reminders` then queues and sends the due
reminders through the delivery outbox (`q2c.collections.reminders`), after the invoices.
"""

import dagster as dg

from assets.delivery import OUTBOX_KEY
from orchestration.jobs import NETWORK_RETRY
from orchestration.resources import Q2CSettings
from q2c import opsdb
from q2c.collections.actions import DunningError
from q2c.collections.holds import ensure_store, export_holds
from q2c.collections.policy import PolicyError
from q2c.collections.reminders import run_reminders
from q2c.payments.reconciliation import (
    REASON_CODES,
    ReconciliationError,
    ReconciliationSummary,
    amount_text,
    read_summary,
    send_summary,
)
from q2c.warehouse import OPS_SCHEMA, connect

RECONCILIATION_EXCEPTIONS_KEY = dg.AssetKey(["core", "mart_reconciliation_exceptions"])
RECONCILIATION_SUMMARY_MART_KEY = dg.AssetKey(["core", "mart_reconciliation_summary"])
RECONCILIATION_SUMMARY_KEY = dg.AssetKey(["reports", "reconciliation_summary"])
# A failing check lists this many of its exceptions; the mart has them all.
CHECK_LISTED = 20


def reconciliation_check_name(reason_code: str) -> str:
    """`missing_in_erp` -> `no_missing_in_erp_exceptions`: the check that fails on them."""
    return f"no_{reason_code}_exceptions"


def _exceptions_table(summary: ReconciliationSummary, reason_code: str) -> str:
    rows = [item for item in summary.exceptions if item.reason_code == reason_code]
    lines = ["| check | invoice | payment | charge | payout | currency | erp | q2c | gateway "
             "| difference |", "|---|---|---|---|---|---|---:|---:|---:|---:|"]
    for item in rows[:CHECK_LISTED]:
        amounts = (item.erp_amount, item.q2c_amount, item.gateway_amount,
                   item.difference_amount)
        cells = [item.check_name, item.invoice_number, item.payment_id, item.gateway_charge_id,
                 item.payout_id, item.currency,
                 *(amount_text(amount, item.currency) for amount in amounts)]
        lines.append("| " + " | ".join("" if c is None else str(c).replace("|", "/")
                                       for c in cells) + " |")
    if len(rows) > CHECK_LISTED:
        lines.append(f"| … {len(rows) - CHECK_LISTED} more | | | | | | | | | |")
    return "\n".join(lines)


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            name=reconciliation_check_name(code),
            asset=RECONCILIATION_EXCEPTIONS_KEY,
            blocking=False,
            description=f"No reconciliation exception with reason {code} above the tolerance.",
        )
        for code in REASON_CODES
    ],
    name="reconciliation_exception_checks",
)
def reconciliation_checks(context: dg.AssetCheckExecutionContext, q2c: Q2CSettings):
    """Fail, with ERROR severity, each reason code that has exceptions tonight."""
    settings = q2c.load()
    with connect(settings.warehouse_path, read_only=True) as conn:
        summary = read_summary(conn, settings.run_date)

    counts = summary.counts_by_reason()
    amounts = summary.amounts_by_reason()
    for code in REASON_CODES:
        stake = {currency: amount_text(amount, currency)
                 for currency, amount in amounts.get(code, {}).items()}
        yield dg.AssetCheckResult(
            check_name=reconciliation_check_name(code),
            asset_key=RECONCILIATION_EXCEPTIONS_KEY,
            passed=counts[code] == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "exceptions": counts[code],
                "difference_by_currency": dg.MetadataValue.json(stake),
                "exceptions_table": dg.MetadataValue.md(_exceptions_table(summary, code)),
            },
        )


@dg.asset(
    key=RECONCILIATION_SUMMARY_KEY,
    deps=[RECONCILIATION_EXCEPTIONS_KEY, RECONCILIATION_SUMMARY_MART_KEY],
    group_name="reporting",
    owners=["team:finance-ops"],
    kinds={"duckdb", "email"},
    retry_policy=NETWORK_RETRY,
)
def reconciliation_summary(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """Tonight's reconciliation in figures: items compared and reconciled, exceptions and
    amounts by reason code, as metadata; mailed to finance when Q2C_FINANCE_EMAIL is set.

    The same summary is mailed once per address: a retry or a second run that finds the
    same exceptions sends nothing new.
    """
    settings = q2c.load()
    with connect(settings.warehouse_path, read_only=True) as conn:
        summary = read_summary(conn, settings.run_date)
    context.log.info("%s; %d items compared, %d reconciled", summary.headline(),
                     summary.items_compared, summary.items_reconciled)

    outcomes, problems = {}, []
    for recipient in settings.finance_emails:
        try:
            receipt = send_summary(summary, settings, recipient)
        except ReconciliationError as exc:
            outcomes[recipient] = "not sent"
            problems.append(str(exc))
            continue
        outcomes[recipient] = receipt.location if receipt else "already sent"
    if not settings.finance_emails:
        context.log.info("no finance email set (Q2C_FINANCE_EMAIL): the summary is not mailed")

    metadata = {**_summary_metadata(summary),
                "finance_email": dg.MetadataValue.json(outcomes)}
    if problems:
        raise dg.Failure(description="; ".join(problems), metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


def _summary_metadata(summary: ReconciliationSummary) -> dict:
    amounts = summary.amounts_by_reason()
    return {
        "reconciled_on": summary.reconciled_on.isoformat(),
        "items_compared": summary.items_compared,
        "items_reconciled": summary.items_reconciled,
        "exceptions": len(summary.exceptions),
        **{f"exceptions_{code}": count for code, count in summary.counts_by_reason().items()},
        "difference_by_reason": dg.MetadataValue.json({
            code: {currency: amount_text(amount, currency)
                   for currency, amount in by_currency.items()}
            for code, by_currency in amounts.items()
        }),
        "summary": dg.MetadataValue.md(summary.markdown()),
    }


# The key the dbt translator (assets/transform.py) gives the ops source q2c_collections,
# so the staging model reading the holds is built after they are copied.
COLLECTION_HOLDS_KEY = dg.AssetKey([OPS_SCHEMA, "collection_holds"])
DUNNING_ACTIONS_KEY = dg.AssetKey(["kpi", "mart_dunning_actions"])
DUNNING_REMINDERS_KEY = dg.AssetKey(["collections", "dunning_reminders"])


@dg.asset(key=COLLECTION_HOLDS_KEY, group_name="ingest", owners=["team:finance-ops"],
          kinds={"sqlite", "duckdb"})
def collection_holds(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """The account owners' dunning holds (`q2c collections hold`), copied from the
    operational store into `q2c_ops.collection_holds` before dbt builds the dunning mart."""
    settings = q2c.load()
    ensure_store(settings.ops_store)
    with opsdb.connect(settings.ops_store) as store, connect(settings.warehouse_path) as conn:
        rows = export_holds(store, conn)
    context.log.info("%d collection holds copied to the warehouse", rows)
    return dg.MaterializeResult(metadata={"dagster/row_count": rows})


@dg.asset(key=DUNNING_REMINDERS_KEY, deps=[DUNNING_ACTIONS_KEY, OUTBOX_KEY],
          group_name="delivery", owners=["team:finance-ops"], kinds={"email"},
          retry_policy=NETWORK_RETRY)
def dunning_reminders(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """Tonight's dunning reminders, queued in the delivery outbox and sent exactly once.

    Each due stage of each overdue invoice (`kpi.mart_dunning_actions`) is rendered from
    the governed templates of the dunning policy with the account's statement of open
    items, and queued keyed by invoice and stage, so a rerun never sends it twice. With
    dunning off (Q2C_DUNNING_ENABLED unset) it reports what would be queued and sends
    nothing.
    """
    settings = q2c.load()
    try:
        report = run_reminders(settings, context.run_id)
    except (DunningError, PolicyError) as exc:
        raise dg.Failure(description=str(exc)) from exc

    counts = report.counts()
    context.log.info("dunning for %s: %s", report.as_of, counts)
    json_counts = ("suppressed_by_reason", "queued_by_stage", "skipped_by_reason")
    return dg.MaterializeResult(metadata={
        **{name: value for name, value in counts.items() if name not in json_counts},
        **{name: dg.MetadataValue.json(counts[name]) for name in json_counts},
        "as_of": report.as_of.isoformat(),
        "policy": f"{report.policy['source']} v{report.policy['version']}",
    })
