"""The nightly job on about 1,000 generated invoices, in-process.

Prints seconds and peak memory (the whole process tree, render workers included) for each
stage, and the render rate of the documents step against a bare WeasyPrint loop over the
same invoice HTML, with as many processes as the step's render pool, in the same run.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ACCOUNTS = 200
AS_OF = dt.date(2026, 11, 30)
STAGES = {
    "ingest": ("land_",),
    "dbt": ("q2c_dbt_models", "q2c_delivery_marts"),
    "checks": ("quality_suite_", "q2c_ops__invoice_holds"),
    "render": ("documents__invoice_pdfs",),
    "einvoice": ("documents__einvoices",),
    "deliver": ("review_queue", "outbox"),
}
SECONDS_TARGETS = {"ingest": 10, "dbt": 60, "checks": 15, "render": 60, "einvoice": 30,
                   "deliver": 15}
PEAK_MIB_TARGET = 2048
RENDER_RATIO_TARGET = 0.9
BARE_LOOP_SAMPLE = 300


def _prepare_environment(home: Path) -> Path:
    landing = home / "landing"
    os.environ.update({
        "Q2C_HOME": str(home / "var"), "Q2C_LANDING_DIR": str(landing),
        "Q2C_AS_OF": AS_OF.isoformat(), "Q2C_MAIL_CHANNEL": "eml",
        "DAGSTER_HOME": str(home / "dagster"), "GX_ANALYTICS_ENABLED": "False",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    })
    (home / "dagster").mkdir(parents=True)
    return landing


def _stage_of(step_key: str) -> str | None:
    for stage, prefixes in STAGES.items():
        if any(step_key.startswith(prefix) for prefix in prefixes):
            return stage
    return None


_bare_state: dict = {}


def _bare_init(root: str) -> None:
    from q2c.documents.render import ContentUrlFetcher

    root_path = Path(root)
    _bare_state.update(base_url=root_path.as_uri() + "/", fetcher=ContentUrlFetcher(root_path))


def _bare_render(html: str) -> int:
    from weasyprint import HTML

    document = HTML(string=html, base_url=_bare_state["base_url"],
                    url_fetcher=_bare_state["fetcher"])
    return len(document.write_pdf())


def _bare_loop_rate(htmls: list[str], workers: int, content_root: Path) -> float:
    """Invoices per second of plain `HTML(string=...).write_pdf()` over `workers` processes."""
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_bare_init, initargs=(str(content_root),)) as pool:
        pool.map(_bare_render, htmls[: workers * 2])
        started = time.perf_counter()
        pool.map(_bare_render, htmls, chunksize=max(1, len(htmls) // (workers * 4)))
        return len(htmls) / (time.perf_counter() - started)


def _invoice_html(settings) -> list[str]:
    from q2c.content.registry import load_registry
    from q2c.documents.load import load_invoice_documents
    from q2c.documents.render import render_html
    from q2c.warehouse import connect

    with connect(settings.warehouse_path, read_only=True) as conn:
        manifest = conn.sql("select invoice_id from q2c_ops.document_manifest").fetchall()
        ids = [invoice_id for (invoice_id,) in manifest]
        documents = load_invoice_documents(conn, ids, settings.seller)
    content = load_registry(settings.content_dir)
    return [render_html(doc, content)[0] for doc in documents]


def main() -> int:
    import dagster as dg

    from bench.memory import RssSampler
    from orchestration.run import run_nightly
    from q2c.demo import generate
    from q2c.documents.pool import default_workers
    from q2c.settings import load_settings

    home = Path(tempfile.mkdtemp(prefix="q2c-bench-"))
    landing = _prepare_environment(home)
    summary = generate(landing, seed=2026, accounts=ACCOUNTS, as_of=AS_OF)
    invoices = summary.row_counts["quickbooks.invoice"]

    instance = dg.DagsterInstance.get()
    with RssSampler() as sampler:
        result = run_nightly(instance=instance)
    if not result.success:
        print(result.summary, file=sys.stderr)
        return 1

    windows: dict[str, list[float]] = {}
    for stats in instance.get_run_step_stats(result.run_id):
        stage = _stage_of(stats.step_key)
        if stage and stats.start_time and stats.end_time:
            window = windows.setdefault(stage, [stats.start_time, stats.end_time, 0.0])
            window[0], window[1] = min(window[0], stats.start_time), max(window[1], stats.end_time)
            window[2] += stats.end_time - stats.start_time

    for stage in STAGES:
        start, end, seconds = windows.get(stage, [0.0, 0.0, 0.0])
        peak = sampler.peak_between(start, end) / 2**20
        print(f"bench nightly_{stage}_seconds: {seconds:.1f} "
              f"(target <= {SECONDS_TARGETS[stage]}; {invoices} invoices landed)")
        print(f"bench nightly_{stage}_peak_mib: {peak:.0f} (target <= {PEAK_MIB_TARGET})")

    settings = load_settings()
    documents = result.result.asset_materializations_for_node("documents__invoice_pdfs")
    rendered = documents[0].metadata["rendered"].value
    pipeline_rate = rendered / windows["render"][2]
    workers = settings.render_workers or default_workers()
    sample = _invoice_html(settings)[:BARE_LOOP_SAMPLE]
    bare_rate = _bare_loop_rate(sample, workers, settings.content_dir)
    print(f"bench nightly_render_rate_vs_bare_weasyprint: {pipeline_rate / bare_rate:.2f} "
          f"(target >= {RENDER_RATIO_TARGET}; job {pipeline_rate:.1f}/s for {rendered} PDFs, "
          f"bare loop {bare_rate:.1f}/s over {len(sample)} of them, {workers} processes each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
