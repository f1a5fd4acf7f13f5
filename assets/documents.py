"""Documents: invoice PDFs from the approved template, and e-invoices, in the document store."""


import datetime as dt
import json
from collections import Counter
from pathlib import Path

import dagster as dg

from assets.quality import HOLDS_KEY
from orchestration.resources import Q2CSettings
from q2c.content.registry import load_registry
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


def _stored_input_hashes(conn) -> set[str]:
    """Inputs already rendered to a PDF that is still in the store; a lost file is redone."""
    rows = conn.execute(
        f"select input_hash, path from {OPS_SCHEMA}.document_manifest where input_hash is not null"
    ).fetchall()
    return {digest for digest, path in rows if Path(path).is_file()}


def _quarantine(conn, run_id: str, rows: list[tuple[str, str, str, str]]) -> None:
    """Invoices the documents step could not build or render, for the run report."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    conn.execute(f"delete from {OPS_SCHEMA}.quarantine where stage = 'documents'")
    if rows:
        conn.executemany(
            f"insert into {OPS_SCHEMA}.quarantine values (?,?,?,?,?,?,?,?,?,?,?)",
            [[run_id, "documents", "quickbooks", table, None, None, invoice_id, field_name,
              reason, json.dumps({"invoice_id": invoice_id}), now]
             for invoice_id, table, field_name, reason in rows],
        )


@dg.asset(
    key=DOCUMENTS_KEY,
    group_name="documents",
    kinds={"pdf", "weasyprint"},
    deps=[
        HOLDS_KEY,
        dg.AssetKey(["core", "fct_invoices"]),
        dg.AssetKey(["core", "fct_invoice_lines"]),
        dg.AssetKey(["core", "fct_invoice_tax_lines"]),
        dg.AssetKey(["core", "dim_accounts"]),
    ],
)
def invoice_documents(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """One PDF per invoice issued up to the run date, rendered from approved content.

    Invoices with a quality hold are left out and named. An invoice whose inputs and content
    versions hash to a document already in `q2c_ops.document_manifest` is not rendered
    again; every new PDF gets a manifest row with its content hash and template version.
    """
    settings = q2c.load()
    with connect(settings.warehouse_path) as conn:
        held = held_invoice_ids(conn)
        issued = [row[0] for row in conn.execute(
            "select invoice_id from core.fct_invoices where issue_date <= ? order by 1",
            [settings.run_date],
        ).fetchall()]
        batch = load_invoice_batch(conn, [i for i in issued if i not in held], settings.seller)
        known = _stored_input_hashes(conn)

    to_render, already_rendered = plan_batch(batch.documents, known)
    failures = []
    try:
        rendered = render_batch(to_render, settings.documents_dir, settings.render_workers or None)
    except BatchRenderError as exc:
        rendered, failures = exc.rendered, exc.failed
        for failure in failures:
            context.log.error("invoice %s not rendered: %s", failure.invoice_number, failure.error)

    with connect(settings.warehouse_path) as conn:
        record_manifest(conn, rendered, context.run_id)
        _quarantine(conn, context.run_id, [
            *[(r.invoice_id, r.table, r.field, r.reason) for r in batch.rejected],
            *[(f.invoice_id, "document_manifest", "pdf", f.error) for f in failures],
        ])

    context.log.info(
        "invoice PDFs: %d rendered, %d unchanged, %d held back, %d not buildable, %d failed",
        len(rendered), len(already_rendered), len([i for i in issued if i in held]),
        len(batch.rejected), len(failures),
    )
    versions = sorted({f"{d.template_id} v{d.template_version}, {d.theme_id} v{d.theme_version}"
                       for d in rendered})
    return dg.MaterializeResult(
        metadata={
            "rendered": len(rendered),
            "unchanged_not_rendered": len(already_rendered),
            "held_back": len([i for i in issued if i in held]),
            "held_back_invoices": dg.MetadataValue.json(
                {i: held[i] for i in issued if i in held}
            ),
            "not_buildable": len(batch.rejected),
            "render_failures": len(failures),
            "content_versions": ", ".join(versions) or "none rendered this run",
            "document_store": dg.MetadataValue.path(str(settings.documents_dir)),
        }
    )


EINVOICES_KEY = dg.AssetKey(["documents", "einvoices"])


@dg.asset(
    key=EINVOICES_KEY,
    group_name="documents",
    kinds={"xml", "pdf"},
    deps=[DOCUMENTS_KEY],
)
def einvoices(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """Peppol BIS 3 UBL files and Factur-X PDFs for the customers that take e-invoices.

    Each is checked against the official EN 16931 and Peppol rules (Q2C_EINVOICE_RULES)
    before it is stored; an invoice whose e-invoice breaks a rule is held back with the
    rule named in `q2c_ops.invoice_holds` (suite `einvoice`), so it is not delivered at all.
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
