"""Documents: invoice PDFs from the approved template, and e-invoices, in the document store."""


import datetime as dt
import json
import os
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from assets.quality import HOLDS_KEY
from orchestration.resources import Q2CSettings
from q2c.content.registry import load_registry
from q2c.content.selection import selection_summary
from q2c.delivery.policy import load_policy as load_channel_policy
from q2c.documents.load import load_invoice_batch
from q2c.documents.pool import (
    BatchRenderError,
    plan_batch,
    record_manifest,
    render_batch,
)
from q2c.documents.render import resolve_content
from q2c.einvoice_documents import einvoice_targets, held_elsewhere, produce_einvoices
from q2c.warehouse import OPS_SCHEMA, connect
from quality.runner import held_invoice_ids

DOCUMENTS_KEY = dg.AssetKey(["documents", "invoice_pdfs"])

DOCUMENTS_START_ENV = "Q2C_DOCUMENTS_START"
# The first issue date of the demo data generated as of 2026-11-30 (the date the tests and
# benchmarks pin): the generator issues invoices over the 364 days before its as-of date.
DEFAULT_DOCUMENTS_START = "2025-12-01"
# Issue dates are the seller's calendar dates; the nightly schedule runs in the same zone.
SELLER_TIMEZONE = "Europe/Berlin"


def document_partitions(start: str | None = None) -> dg.DailyPartitionsDefinition:
    """One partition per issue date, from `start` to today's date in the seller's zone.

    The first date comes from `start`, else Q2C_DOCUMENTS_START, else the demo data's
    first issue date. Dagster needs the partition set when it loads the definitions, so
    this one setting is read at import, not when a step runs. Today's partition exists
    (`end_offset=1`), so the 02:00 run and a backfill can both reach the invoices issued
    today. Invoices issued before the first date are still rendered by the nightly run;
    they cannot be backfilled by partition.
    """
    first = start or os.environ.get(DOCUMENTS_START_ENV) or DEFAULT_DOCUMENTS_START
    try:
        dt.date.fromisoformat(first)
    except ValueError as exc:
        raise ValueError(
            f"the first issue date of the documents partitions, `{first}` "
            f"({DOCUMENTS_START_ENV}), is not a date: give it as YYYY-MM-DD"
        ) from exc
    return dg.DailyPartitionsDefinition(
        start_date=first, timezone=SELLER_TIMEZONE, end_offset=1
    )


DOCUMENT_PARTITIONS = document_partitions()


def _stored_input_hashes(conn) -> set[str]:
    """Inputs already rendered to a PDF that is still in the store; a lost file is redone."""
    rows = conn.execute(
        f"select input_hash, path from {OPS_SCHEMA}.document_manifest where input_hash is not null"
    ).fetchall()
    return {digest for digest, path in rows if Path(path).is_file()}


def quarantine_renders(
    conn, run_id: str, rows: list[tuple[str, str, str, str]], scope: list[str] | None
) -> None:
    """Invoices the documents step could not build or render, for the run report.

    A run replaces the rows of the invoices it looked at (`scope`; all when None), so a
    backfill of one day leaves the other days' reasons in place.
    """
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if scope is None:
        conn.execute(f"delete from {OPS_SCHEMA}.quarantine where stage = 'documents'")
    elif scope:
        conn.execute(
            f"delete from {OPS_SCHEMA}.quarantine where stage = 'documents' "
            "and list_contains(?, record_id)",
            [scope],
        )
    if rows:
        conn.executemany(
            f"insert into {OPS_SCHEMA}.quarantine values (?,?,?,?,?,?,?,?,?,?,?)",
            [[run_id, "documents", "quickbooks", table, None, None, invoice_id, field_name,
              reason, json.dumps({"invoice_id": invoice_id}), now]
             for invoice_id, table, field_name, reason in rows],
        )


def issue_window(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date] | None:
    """First and last issue date of the partitions a run materializes; None without any.

    One partition or a range (a backfill runs as one run, see the backfill policy). The
    e-invoice and delivery assets are not partitioned, but in the same run they read the
    run's days the same way.
    """
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    keys = context.partition_key_range
    return dt.date.fromisoformat(keys.start), dt.date.fromisoformat(keys.end)


def _issued_invoices(
    conn, run_date: dt.date, window: tuple[dt.date, dt.date] | None
) -> dict[str, dt.date]:
    """Invoice id to issue date, for invoices issued by the run date (and in the window)."""
    sql = "select invoice_id, issue_date from core.fct_invoices where issue_date <= ?"
    params: list = [run_date]
    if window is not None:
        sql += " and issue_date between ? and ?"
        params += list(window)
    return dict(conn.execute(sql + " order by 1", params).fetchall())


def _rendered_days(per_day: Counter) -> Iterator[dg.AssetMaterialization]:
    """A materialization of each issue date a run without partition rendered PDFs for.

    So the partition view shows the days the nightly job rendered. Days before the first
    partition (Q2C_DOCUMENTS_START) have none.
    """
    for day, count in sorted(per_day.items()):
        if DOCUMENT_PARTITIONS.has_partition_key(day.isoformat()):
            yield dg.AssetMaterialization(
                asset_key=DOCUMENTS_KEY, partition=day.isoformat(),
                metadata={"rendered": count},
            )


# A backfill of many days runs as one run with one warm render pool, not one run per day.
# The policy is a beta parameter of `dg.asset` in Dagster 1.13; its warning says nothing
# an operator can act on.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    _documents_asset = dg.asset(
        key=DOCUMENTS_KEY,
        group_name="documents",
        kinds={"pdf", "weasyprint"},
        partitions_def=DOCUMENT_PARTITIONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[
            HOLDS_KEY,
            dg.AssetKey(["core", "fct_invoices"]),
            dg.AssetKey(["core", "fct_invoice_lines"]),
            dg.AssetKey(["core", "fct_invoice_tax_lines"]),
            dg.AssetKey(["core", "dim_accounts"]),
        ],
    )


@_documents_asset
def invoice_documents(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """One PDF per invoice, rendered from approved content; partitioned by issue date.

    A run for a partition, or for a range of them (a backfill, run as one run), looks at
    the invoices issued on those days and nothing else. A run without a partition looks at
    every invoice issued up to the run date. The nightly job runs that way: its schedule
    and `q2c run` launch it without a partition, which Dagster 1.13 allows for a job that
    mixes partitioned and unpartitioned assets, and each issue date it rendered PDFs for
    is recorded as a materialized partition. So a night also picks up an invoice of an
    earlier day released from a quality hold, corrected in the ERP or whose file was lost.
    A schedule built from the partitions would render one day per night and leave those
    to a manual backfill; a nightly partition range would grow by a day every night and
    could not reach invoices issued before the first partition.

    Invoices with a quality hold are left out and named. An invoice whose inputs and
    content versions hash to a document already in `q2c_ops.document_manifest` is not
    rendered again, and no render pool starts when nothing changed; every new PDF gets a
    manifest row with its content hash and template version.
    """
    settings = q2c.load()
    window = issue_window(context)
    with connect(settings.warehouse_path) as conn:
        held = held_invoice_ids(conn)
        issue_dates = _issued_invoices(conn, settings.run_date, window)
        issued = list(issue_dates)
        batch = load_invoice_batch(
            conn, [i for i in issued if i not in held], settings.seller
        )
        known = _stored_input_hashes(conn)

    to_render, already_rendered = plan_batch(batch.documents, known)
    failures = []
    try:
        rendered = render_batch(
            to_render, settings.documents_dir, settings.render_workers or None
        )
    except BatchRenderError as exc:
        rendered, failures = exc.rendered, exc.failed
        for failure in failures:
            context.log.error(
                "invoice %s not rendered: %s", failure.invoice_number, failure.error
            )

    with connect(settings.warehouse_path) as conn:
        record_manifest(conn, rendered, context.run_id)
        quarantine_renders(conn, context.run_id, [
            *[(r.invoice_id, r.table, r.field, r.reason) for r in batch.rejected],
            *[(f.invoice_id, "document_manifest", "pdf", f.error) for f in failures],
        ], scope=None if window is None else issued)

    per_day = Counter(issue_dates[doc.invoice_id] for doc in rendered)
    issue_span = (f"{window[0]} to {window[1]}" if window
                  else f"all up to {settings.run_date}")
    context.log.info(
        "invoice PDFs issued %s: %d rendered, %d unchanged, %d held back, "
        "%d not buildable, %d failed",
        issue_span, len(rendered), len(already_rendered),
        len([i for i in issued if i in held]), len(batch.rejected), len(failures),
    )
    versions = sorted({
        f"{d.template_id} v{d.template_version}, {d.theme_id} v{d.theme_version}"
        for d in rendered
    })
    # The run's own materialization first: readers of the run take the first one.
    yield dg.MaterializeResult(
        metadata={
            "issue_dates": issue_span,
            "rendered": len(rendered),
            "unchanged_not_rendered": len(already_rendered),
            "issue_dates_with_new_pdfs": len(per_day),
            "held_back": len([i for i in issued if i in held]),
            "held_back_invoices": dg.MetadataValue.json(
                {i: held[i] for i in issued if i in held}
            ),
            "not_buildable": len(batch.rejected),
            "render_failures": len(failures),
            "content_versions": ", ".join(versions) or "none rendered this run",
            # Per version and fallback, how many of this run's documents used it; the
            # selection of each document, with why, is in q2c_ops.document_manifest.
            "content_used": dg.MetadataValue.json(selection_summary(rendered)),
            "document_store": dg.MetadataValue.path(str(settings.documents_dir)),
        }
    )
    if window is None:
        yield from _rendered_days(per_day)


EINVOICES_KEY = dg.AssetKey(["documents", "einvoices"])


# Not partitioned: Dagster cannot run a partitioned asset downstream of the partitioned
# documents in the nightly run, which has no partition. The single-run backfill policy lets
# it join a backfill's one run of a range of days all the same (`dagster asset materialize
# --partition-range`); the policy's warning as for the documents asset.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    _einvoices_asset = dg.asset(
        key=EINVOICES_KEY,
        group_name="documents",
        kinds={"xml", "pdf"},
        deps=[DOCUMENTS_KEY],
        backfill_policy=dg.BackfillPolicy.single_run(),
    )


@_einvoices_asset
def einvoices(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """Peppol BIS 3 UBL files and Factur-X PDFs for the customers that take e-invoices.

    Each is checked against the official EN 16931 and Peppol rules (Q2C_EINVOICE_RULES)
    before it is stored; an invoice whose e-invoice breaks a rule is held back with the
    rule named in `q2c_ops.invoice_holds` (suite `einvoice`), so it is not delivered at all.

    In a backfill's run it builds the same e-invoices as a night (those not built yet, of
    every day): each run's e-invoice holds replace the last run's as a whole, so a run
    that looked at a few days only would release the holds of all the others.
    """
    settings = q2c.load()
    content = load_registry(settings.content_dir)
    used = resolve_content(content)
    with connect(settings.warehouse_path) as conn:
        targets = einvoice_targets(
            conn, settings.run_date, held_elsewhere(held_invoice_ids(conn)),
            load_channel_policy(settings.delivery_policy_file),
        )
        run = produce_einvoices(conn, targets, settings, content, used, context.run_id)

    by_format = Counter(stored.format for stored in run.written)
    context.log.info(
        "e-invoices: %d written (%s), %d unchanged, %d held back",
        len(run.written), dict(by_format), run.unchanged, len(run.holds),
    )
    return dg.MaterializeResult(
        metadata={
            "written": len(run.written),
            "peppol_ubl": by_format.get("peppol_ubl", 0),
            "facturx": by_format.get("facturx", 0),
            "unchanged_not_rebuilt": run.unchanged,
            "held_back": len(run.holds),
            "held_back_invoices": dg.MetadataValue.json(
                {number: f"{rule}: {why[:300]}" for number, rule, why in run.holds.values()}
            ),
            "rules_folder": dg.MetadataValue.path(str(settings.einvoice_rules_dir)),
        }
    )
