"""The nightly job on 10,000 generated invoices, three times: full, unchanged, 1% changed.

The whole job runs in this process on demo data of about 10,000 invoices and 50,000 invoice
lines (`q2c.demo.generate` with 3 to 6 product lines per invoice). It runs three times on
the same warehouse: first on fresh data (the full run), then again with nothing changed,
then after the issue and due dates of one good invoice in a hundred moved a day earlier
in the landed ERP file, as a correction in the ERP would. For each run it prints the
seconds and the peak memory (the whole process tree, render workers included) of every
stage, beside the render floor measured in the same process: the invoices the full run
rendered divided by the rate of a bare pool of WeasyPrint workers (as many as the render
pool has) over a sample of the same invoices' HTML, as `bench_nightly` measures it.

Targets: the full run within 1.2 times the render floor; the unchanged run under 5% of the
full run; the 1%-changed run under 10% of it. The unchanged run must render nothing and
the changed run exactly the changed invoices.

Q2C_BENCH_NIGHTLY_INVOICES shrinks the data for a quick check (default 10,000), and
Q2C_BENCH_NIGHTLY_SAMPLE the bare WeasyPrint sample (default 300 invoices);
Q2C_BENCH_NIGHTLY_KEEP=1 keeps the data and the Dagster instance of the runs to look into.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

INVOICES = int(os.environ.get("Q2C_BENCH_NIGHTLY_INVOICES", "10000"))
SAMPLE = int(os.environ.get("Q2C_BENCH_NIGHTLY_SAMPLE", "300"))
KEEP = os.environ.get("Q2C_BENCH_NIGHTLY_KEEP") == "1"
INVOICES_PER_ACCOUNT = 5  # the demo generator issues 3 to 7 invoices per billed account
LINES_PER_INVOICE = (3, 6)  # with subtotal and discount lines, about 5 lines an invoice
CHANGED_SHARE = 100  # one invoice in a hundred
SEED = 2026
AS_OF = dt.date(2026, 11, 30)

FLOOR_TARGET = 1.2
UNCHANGED_TARGET = 0.05
CHANGED_TARGET = 0.10

# Step key prefixes of each stage; a step matching none counts as "other".
STAGES = {
    "ingest": ("land_",),
    "dbt": ("q2c_dbt_models", "q2c_delivery_marts"),
    "checks": ("quality_suite_", "q2c_ops__invoice_holds", "freshness_"),
    "render": ("documents__invoice_pdfs",),
    "einvoice": ("documents__einvoices",),
    "deliver": ("review_queue", "outbox"),
    "reconcile": ("reports__reconciliation", "reconciliation", "raw_q2c_collections",
                  "collections__", "cash__"),
    "report": ("reports__",),
}
RUNS = ("full", "unchanged", "1% changed")
SLOWEST = 6
INSTANCE_YAML = Path(__file__).resolve().parents[1] / "orchestration" / "dagster.yaml"


@dataclass
class RunFigures:
    """Seconds and peak bytes per stage of one run, and what its documents step did."""

    wall: float
    peak: int
    seconds: dict[str, float] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    rendered: int = 0


def _prepare_environment(home: Path) -> Path:
    landing = home / "landing"
    os.environ.update({
        "Q2C_HOME": str(home / "var"), "Q2C_LANDING_DIR": str(landing),
        "Q2C_AS_OF": AS_OF.isoformat(), "Q2C_MAIL_CHANNEL": "eml",
        "DAGSTER_HOME": str(home / "dagster"), "GX_ANALYTICS_ENABLED": "False",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1",
    })
    (home / "dagster").mkdir(parents=True)
    # The instance `make setup` gives the embedded default: SQLite storage, telemetry off.
    shutil.copy(INSTANCE_YAML, home / "dagster" / "dagster.yaml")
    return landing


def _stage_of(step_key: str) -> str:
    for stage, prefixes in STAGES.items():
        if any(step_key.startswith(prefix) for prefix in prefixes):
            return stage
    return "other"


def _run(instance, sampler) -> RunFigures:
    """One nightly run in this process, with its seconds and peaks per stage."""
    from orchestration.run import run_nightly

    started = time.time()
    result = run_nightly(instance=instance)
    ended = time.time()
    if not result.success:
        raise RuntimeError(f"the nightly run failed:\n{result.summary}")

    figures = RunFigures(wall=ended - started, peak=sampler.peak_between(started, ended))
    for stats in instance.get_run_step_stats(result.run_id):
        if not (stats.start_time and stats.end_time):
            continue
        stage = _stage_of(stats.step_key)
        figures.steps[stats.step_key] = stats.end_time - stats.start_time
        figures.seconds[stage] = (figures.seconds.get(stage, 0.0)
                                  + stats.end_time - stats.start_time)
        peak = sampler.peak_between(stats.start_time, stats.end_time)
        figures.peaks[stage] = max(peak, figures.peaks.get(stage, 0))
    figures.seconds["run overhead"] = figures.wall - sum(figures.seconds.values())
    documents = result.result.asset_materializations_for_node("documents__invoice_pdfs")
    figures.rendered = documents[0].metadata["rendered"].value if documents else 0
    return figures


def change_invoice_dates(landing: Path, good_ids: set[str], share: int) -> list[str]:
    """Move the issue and due date of one good invoice in `share` a day earlier; their ids.

    Only invoices the generator made good (not the rows that are wrong on purpose) and
    landed in one row are changed, so each change is a plain correction that must reach
    its document: one in `share` of them, and at least one.
    """
    path = landing / "quickbooks" / "invoice.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    header = rows[0]
    issued, due, key = (header.index(name) for name in ("transaction_date", "due_date", "id"))
    landed = Counter(row[key] for row in rows[1:] if len(row) == len(header))
    eligible = [row for row in rows[1:]
                if len(row) == len(header) and row[key] in good_ids and landed[row[key]] == 1]
    changed = eligible[::share]
    for row in changed:
        for column in (issued, due):
            row[column] = str(dt.date.fromisoformat(row[column]) - dt.timedelta(days=1))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return [row[key] for row in changed]


def _held_invoices(settings) -> dict[str, list[str]]:
    from q2c.warehouse import connect
    from quality.runner import held_invoice_ids

    with connect(settings.warehouse_path, read_only=True) as conn:
        return held_invoice_ids(conn)


def _sample_html(settings, sample: int) -> list[str]:
    """The HTML of `sample` rendered invoices spread over the batch, for the bare pool."""
    from q2c.content.registry import load_registry
    from q2c.documents.load import load_invoice_documents
    from q2c.documents.render import render_html
    from q2c.warehouse import connect

    with connect(settings.warehouse_path, read_only=True) as conn:
        ids = [invoice_id for (invoice_id,) in conn.sql(
            "select distinct invoice_id from q2c_ops.document_manifest order by 1").fetchall()]
        step = max(1, len(ids) // sample)
        documents = load_invoice_documents(conn, ids[::step][:sample], settings.seller)
    content = load_registry(settings.content_dir)
    return [render_html(doc, content)[0] for doc in documents]


def _bare_rate(htmls: list[str], workers: int, content_dir: Path) -> float:
    """Invoices per second of `bench_nightly`'s bare WeasyPrint loop over `workers` processes.

    Its workers start from a fork server, not by forking this process: this one holds
    Dagster's and DuckDB's threads, and a forked child can inherit a lock one of them held.
    """
    from bench.bench_nightly import _bare_init, _bare_render

    context = multiprocessing.get_context("forkserver")
    with context.Pool(workers, initializer=_bare_init, initargs=(str(content_dir),)) as pool:
        pool.map(_bare_render, htmls[: workers * 2])
        started = time.perf_counter()
        pool.map(_bare_render, htmls, chunksize=max(1, len(htmls) // (workers * 4)))
        return len(htmls) / (time.perf_counter() - started)


def _print_table(runs: dict[str, RunFigures]) -> None:
    stages = [*STAGES, "other", "run overhead"]
    head = "".join(f"{name + ' s':>16}{'MiB':>7}" for name in RUNS)
    print(f"{'stage':<14}{head}")
    for stage in stages:
        cells = "".join(
            f"{runs[name].seconds.get(stage, 0.0):>16.1f}"
            f"{runs[name].peaks.get(stage, 0) / 2**20:>7.0f}" for name in RUNS
        )
        print(f"{stage:<14}{cells}")
    total = "".join(f"{runs[name].wall:>16.1f}{runs[name].peak / 2**20:>7.0f}" for name in RUNS)
    print(f"{'total (wall)':<14}{total}")
    print(f"{'PDFs rendered':<14}" + "".join(f"{runs[name].rendered:>23}" for name in RUNS))
    for name in RUNS:
        slowest = sorted(runs[name].steps.items(), key=lambda item: -item[1])[:SLOWEST]
        print(f"slowest steps, {name}: "
              + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in slowest))


def main() -> int:
    import dagster as dg

    from bench.memory import RssSampler
    from q2c.demo import generate
    from q2c.documents.pool import default_workers
    from q2c.settings import load_settings

    home = Path(tempfile.mkdtemp(prefix="q2c-bench-10k-"))
    try:
        landing = _prepare_environment(home)
        summary = generate(landing, seed=SEED, accounts=max(1, INVOICES // INVOICES_PER_ACCOUNT),
                           as_of=AS_OF, lines_per_invoice=LINES_PER_INVOICE)
        invoices = summary.row_counts["quickbooks.invoice"]
        lines = summary.row_counts["quickbooks.invoice_line"]
        load = " ".join(f"{value:.1f}" for value in os.getloadavg())
        instance = dg.DagsterInstance.get()
        runs: dict[str, RunFigures] = {}
        with RssSampler() as sampler:
            runs["full"] = _run(instance, sampler)
            runs["unchanged"] = _run(instance, sampler)
            changed = change_invoice_dates(landing, set(summary.invoice_states),
                                           CHANGED_SHARE)
            runs["1% changed"] = _run(instance, sampler)

        settings = load_settings()
        held = _held_invoices(settings)
        to_render = [invoice_id for invoice_id in changed if invoice_id not in held]
        workers = settings.render_workers or default_workers()
        sample = _sample_html(settings, SAMPLE)
        bare_rate = _bare_rate(sample, workers, settings.content_dir)
    except RuntimeError as exc:
        print(f"bench nightly_10k: FAILED ({exc})", file=sys.stderr)
        return 1
    finally:
        if KEEP:
            print(f"kept the runs' data and instance in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    print(f"nightly job on {invoices} invoices and {lines} invoice lines, {workers} render "
          f"processes; load average {load} at the start, "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} at the end")
    _print_table(runs)
    full, unchanged, changed_run = (runs[name] for name in RUNS)
    floor = full.rendered / bare_rate
    print(f"render floor: {full.rendered} invoices / {bare_rate:.1f} invoices/s of bare "
          f"WeasyPrint ({workers} processes, {len(sample)} invoices sampled) = {floor:.1f} s")
    print(f"bench nightly_10k_full_vs_render_floor: {full.wall / floor:.2f} "
          f"(target <= {FLOOR_TARGET}; full run {full.wall:.1f} s, render floor {floor:.1f} s)")
    print(f"bench nightly_10k_unchanged_vs_full: {unchanged.wall / full.wall:.3f} "
          f"(target < {UNCHANGED_TARGET}; {unchanged.wall:.1f} s, "
          f"{unchanged.rendered} PDFs rendered)")
    print(f"bench nightly_10k_1pct_changed_vs_full: {changed_run.wall / full.wall:.3f} "
          f"(target < {CHANGED_TARGET}; {changed_run.wall:.1f} s, {len(changed)} invoices "
          f"changed, {len(changed) - len(to_render)} of them held back, "
          f"{changed_run.rendered} PDFs rendered)")
    if unchanged.rendered or changed_run.rendered != len(to_render):
        print(f"the reruns rendered {unchanged.rendered} and {changed_run.rendered} PDFs; "
              f"expected none and {len(to_render)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
