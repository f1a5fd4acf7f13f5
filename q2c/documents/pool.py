"""Render batches of invoices in a warm pool of worker processes.

Each worker loads the content registry, compiles the template, parses the theme stylesheet
and loads the fonts once, then renders many invoices. An invoice's input hash covers the
document's data and the content versions it is rendered with; `plan_batch()` skips every
invoice whose input hash is already in the document manifest, so a rerun renders only what
changed. PDFs go to `<out_dir>/<yyyy>/<mm>/<invoice number>-<content hash[:12]>.pdf` and
are never overwritten with different bytes: a new rendering gets a new content hash.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import logging
import math
import multiprocessing
import os
import re
import resource
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from q2c.content.registry import ContentError, ContentRegistry, load_registry
from q2c.content.selection import selection_of
from q2c.documents.model import InvoiceDocument, canonical_json
from q2c.documents.render import (
    PdfRenderer,
    UsedContent,
    render_html,
    resolve_content,
)
from q2c.warehouse import OPS_SCHEMA

log = logging.getLogger(__name__)

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_WARM_UP_HTML = """<!DOCTYPE html><html lang="en"><head><title>warm-up</title>
<link rel="stylesheet" href="{stylesheet}"></head><body><p>Invoice 0123456789 <b>Total</b>
€ ¥ 請求書 <img src="{logo}" alt=""></p></body></html>"""


@dataclass(frozen=True)
class RenderedDocument:
    """One rendered invoice PDF and what it was made from (a document manifest row)."""

    document_id: str
    invoice_id: str
    invoice_number: str
    input_hash: str
    content_hash: str
    template_id: str
    template_version: str
    theme_id: str
    theme_version: str
    texts_id: str
    texts_version: str
    language: str
    path: str
    bytes: int
    # The selection record (`Selection.to_json()`): every version used and why.
    content_selection: str = "{}"


@dataclass(frozen=True)
class RenderFailure:
    invoice_id: str
    invoice_number: str
    error: str


@dataclass
class BatchResult:
    rendered: list[RenderedDocument] = field(default_factory=list)
    failed: list[RenderFailure] = field(default_factory=list)


class BatchRenderError(RuntimeError):
    """Some invoices of a batch failed; the others were rendered and are in `rendered`."""

    def __init__(self, result: BatchResult):
        numbers = ", ".join(failure.invoice_number for failure in result.failed[:10])
        super().__init__(
            f"{len(result.failed)} of {len(result.failed) + len(result.rendered)} invoices "
            f"failed to render ({numbers}); first error: {result.failed[0].error}"
        )
        self.rendered = result.rendered
        self.failed = result.failed


def input_hash(doc: InvoiceDocument, used: UsedContent) -> str:
    """sha256 of the canonical JSON of the document and the content selected for it.

    `used` is the batch's `ContentSet` (the document's selection is made from it) or the
    document's own `Selection`. Template, theme, labels and legal texts count, with the
    language file used, so a new version of any of them renders the document again.
    Message blocks do not: a campaign that starts or ends after an invoice was rendered
    must not change a document that may already have been sent.
    """
    selection = selection_of(doc, used)
    payload = {"document": doc.canonical(), "content": selection.hash_payload()}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def plan_batch(
    docs: Iterable[InvoiceDocument],
    manifest_input_hashes: Iterable[str],
    content: ContentRegistry | None = None,
    on: dt.date | None = None,
) -> tuple[list[InvoiceDocument], list[InvoiceDocument]]:
    """Split a batch into invoices to render and invoices already rendered.

    Args:
        docs: The invoices of the batch.
        manifest_input_hashes: Input hashes already in the document manifest
            (see `manifest_input_hashes()`).
        content: The content registry (the repository's by default).
        on: The date the content must be in effect on (today by default); use the same
            date for `render_batch()`.

    Returns:
        `(to_render, already_rendered)`. An invoice listed twice is rendered once. An
        invoice whose content cannot be selected (no legal text for its case, say) is put
        to render, where it fails with that reason and is reported with the others.
    """
    used = resolve_content(content or load_registry(), on=on)
    known = set(manifest_input_hashes)
    to_render: list[InvoiceDocument] = []
    already_rendered: list[InvoiceDocument] = []
    for doc in docs:
        try:
            digest = input_hash(doc, used)
        except ContentError as exc:
            log.warning("invoice %s: no content selection: %s", doc.invoice_id, exc)
            to_render.append(doc)
            continue
        if digest in known:
            already_rendered.append(doc)
        else:
            known.add(digest)
            to_render.append(doc)
    log.info(
        "document batch planned: %d to render, %d already rendered",
        len(to_render),
        len(already_rendered),
    )
    return to_render, already_rendered


def manifest_input_hashes(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """All input hashes recorded in `q2c_ops.document_manifest`."""
    rows = conn.execute(
        f"select distinct input_hash from {OPS_SCHEMA}.document_manifest "
        "where input_hash is not null"
    ).fetchall()
    return {row[0] for row in rows}


def record_manifest(
    conn: duckdb.DuckDBPyConnection,
    rendered: Sequence[RenderedDocument],
    run_id: str,
    rendered_at: dt.datetime | None = None,
) -> int:
    """Insert rendered documents into `q2c_ops.document_manifest`; return rows inserted.

    A document id is derived from the PDF's bytes, so recording the same rendering twice
    inserts it once.
    """
    stamp = (rendered_at or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    if not rendered:
        return 0
    ensure_manifest_columns(conn)
    before = _manifest_count(conn)
    conn.executemany(
        f"""
        insert into {OPS_SCHEMA}.document_manifest (
            document_id, invoice_id, invoice_number, input_hash, content_hash, template_id,
            template_version, theme_id, theme_version, language, path, bytes, rendered_at,
            run_id, content_selection
        ) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        on conflict (document_id) do nothing
        """,
        [
            [
                doc.document_id,
                doc.invoice_id,
                doc.invoice_number,
                doc.input_hash,
                doc.content_hash,
                doc.template_id,
                doc.template_version,
                doc.theme_id,
                doc.theme_version,
                doc.language,
                doc.path,
                doc.bytes,
                stamp,
                run_id,
                doc.content_selection,
            ]
            for doc in rendered
        ],
    )
    inserted = _manifest_count(conn) - before
    log.info(
        "recorded %d documents in %s.document_manifest for run %s", inserted, OPS_SCHEMA, run_id
    )
    return inserted


def ensure_manifest_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """Add the columns newer versions record to a manifest table made by an older one.

    `content_selection` (JSON): the versions each document used and why.
    """
    conn.execute(
        f"alter table {OPS_SCHEMA}.document_manifest "
        "add column if not exists content_selection json"
    )


def _manifest_count(conn: duckdb.DuckDBPyConnection) -> int:
    return conn.execute(f"select count(*) from {OPS_SCHEMA}.document_manifest").fetchone()[0]


def document_file_name(invoice_number: str, content_hash: str) -> str:
    """`<invoice number>-<hash[:12]>.pdf`, with anything unsafe in a file name replaced."""
    stem = _UNSAFE_FILE_CHARS.sub("_", invoice_number).strip("._")[:80] or "invoice"
    return f"{stem}-{content_hash[:12]}.pdf"


def render_to_store(
    doc: InvoiceDocument,
    content: ContentRegistry,
    renderer: PdfRenderer,
    used: UsedContent,
    out_dir: Path,
) -> RenderedDocument:
    """Render one invoice, store its PDF and describe it; the unit of work of a worker."""
    html, used = render_html(doc, content, used=used)
    pdf = renderer.render(html)
    content_hash = hashlib.sha256(pdf).hexdigest()
    folder = Path(out_dir) / f"{doc.issue_date:%Y}" / f"{doc.issue_date:%m}"
    path = folder / document_file_name(doc.invoice_number, content_hash)
    _write_once(path, pdf)
    versions = used.versions()
    return RenderedDocument(
        document_id=f"{doc.invoice_id}-{content_hash[:16]}",
        invoice_id=doc.invoice_id,
        invoice_number=doc.invoice_number,
        input_hash=input_hash(doc, used),
        content_hash=content_hash,
        template_id=versions["template"]["id"],
        template_version=versions["template"]["version"],
        theme_id=versions["theme"]["id"],
        theme_version=versions["theme"]["version"],
        texts_id=versions["texts"]["id"],
        texts_version=versions["texts"]["version"],
        language=doc.language,
        path=str(path),
        bytes=len(pdf),
        content_selection=used.to_json(),
    )


def _write_once(path: Path, data: bytes) -> None:
    """Write atomically; a file that exists already has these bytes (its name is the hash)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


# Per-process state of a pool worker, set once by `_init_worker`.
_worker: dict = {}


def _init_worker(content_dir: str | None) -> None:
    """Load the registry and the renderer once, then render a warm-up page.

    A failure to load is kept and reported for each invoice, instead of breaking the pool
    with an error that names no cause. The warm-up only loads fonts, stylesheet and
    template early; if it cannot run (no content in effect today), the first invoice does it.

    Then everything loaded so far (modules, registry, fonts, parsed stylesheets) is moved
    out of the garbage collector's sight with `gc.freeze()`: it lives as long as the worker,
    and scanning it again at every full collection costs about a tenth of the render time
    of a long invoice.
    """
    try:
        content = load_registry(Path(content_dir) if content_dir else None)
        renderer = PdfRenderer(content.root)
    except Exception as exc:  # reported per invoice by _render_in_worker
        _worker["startup_error"] = f"{type(exc).__name__}: {exc}"
        return
    _worker.update(content=content, renderer=renderer)
    try:
        used = resolve_content(content)
        content.template(used.template)
        theme = content.read_yaml(used.theme, "theme.yaml")
        renderer.render(
            _WARM_UP_HTML.format(
                stylesheet=used.theme.file_name(theme.get("stylesheet")),
                logo=used.theme.file_name(theme.get("logo", "logo.svg")),
            )
        )
    except Exception as exc:  # a skipped warm-up costs time on the first invoice only
        log.debug("render worker %d skipped its warm-up: %s", os.getpid(), exc)
    gc.collect()
    gc.freeze()


def _render_in_worker(
    task: tuple[InvoiceDocument, UsedContent, str],
) -> tuple[RenderedDocument | RenderFailure, int, int]:
    """Render one invoice into the store; return its description, never the PDF bytes.

    The worker's pid and peak resident memory (bytes) ride along, so the pool can report
    the memory each worker needed without a separate round trip.
    """
    doc, used, out_dir = task
    if "startup_error" in _worker:
        outcome: RenderedDocument | RenderFailure = RenderFailure(
            doc.invoice_id, doc.invoice_number, _worker["startup_error"]
        )
    else:
        try:
            outcome = render_to_store(
                doc, _worker["content"], _worker["renderer"], used, Path(out_dir)
            )
        except Exception as exc:  # one bad invoice must not stop the batch; it is reported
            outcome = RenderFailure(
                doc.invoice_id, doc.invoice_number, f"{type(exc).__name__}: {exc}"
            )
    # ru_maxrss is in KiB on Linux.
    return outcome, os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def default_workers() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota.

    `os.cpu_count()` counts the machine's cores, which overcommits a process pinned to a
    few cores (taskset, a Kubernetes CPU manager) or limited by a container's quota.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_cpu_quota(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """CPUs allowed by the cgroup v2 quota (`cpu.max` holds `<quota> <period>` or `max`)."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


# Invoices per message to a worker: enough to make the pickling and pipe round trips small
# next to a render (tens of milliseconds at least), few enough that the last messages of a
# batch end together on every worker.
_MAX_CHUNK = 8


class RenderPool:
    """A pool of warm rendering processes, reusable across batches.

    Workers start with the 'forkserver' method (fresh interpreters forked from a small
    server process), so they inherit no open warehouse connection or thread state from the
    caller, which may be a Dagster run. As with any non-fork start method, a script that
    creates a pool must guard its entry point with `if __name__ == "__main__":`.

    Work goes to the workers in chunks of a few invoices, longest invoices first, so the
    pipes carry few messages and no worker is left with a long invoice while the others
    idle at the end of a batch. Each worker writes its PDFs to the store itself and sends
    back only their description, and its peak memory, kept in `worker_peak_bytes`.

    Example:
        with RenderPool(workers=4) as pool:
            result = pool.render(docs, out_dir)
    """

    def __init__(self, workers: int | None = None, content_dir: Path | None = None):
        self.workers = max(1, workers or default_workers())
        self.content_dir = Path(content_dir) if content_dir else None
        self.worker_peak_bytes: dict[int, int] = {}
        self._executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init_worker,
            initargs=(str(self.content_dir) if self.content_dir else None,),
        )

    def render(
        self,
        docs: Sequence[InvoiceDocument],
        out_dir: Path,
        used: UsedContent | None = None,
        on: dt.date | None = None,
    ) -> BatchResult:
        """Render every document; failures are collected, the rest goes on."""
        if used is None:
            used = resolve_content(load_registry(self.content_dir), on=on)
        tasks = [(doc, used, str(out_dir)) for doc in docs]
        # Page count follows line count; the longest invoices go first, the shortest last.
        order = sorted(range(len(tasks)), key=lambda i: -len(tasks[i][0].lines))
        chunksize = max(1, min(_MAX_CHUNK, len(tasks) // (self.workers * 16)))
        outcomes: list[RenderedDocument | RenderFailure | None] = [None] * len(tasks)
        done = self._executor.map(_render_in_worker, [tasks[i] for i in order], chunksize=chunksize)
        for i, (outcome, pid, peak) in zip(order, done, strict=True):
            outcomes[i] = outcome
            self.worker_peak_bytes[pid] = max(peak, self.worker_peak_bytes.get(pid, 0))
        result = BatchResult()
        for outcome in outcomes:
            if isinstance(outcome, RenderFailure):
                log.error("invoice %s failed to render: %s", outcome.invoice_id, outcome.error)
                result.failed.append(outcome)
            else:
                result.rendered.append(outcome)
        log.info(
            "rendered %d invoice documents with %d workers, %d failed; peak worker memory "
            "%.0f MiB",
            len(result.rendered),
            self.workers,
            len(result.failed),
            self.peak_worker_mib(),
        )
        return result

    def peak_worker_mib(self) -> float:
        """The largest peak resident memory of any worker so far, in MiB (0 before work)."""
        return max(self.worker_peak_bytes.values(), default=0) / 2**20

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def render_batch(
    docs: Sequence[InvoiceDocument],
    out_dir: Path,
    workers: int | None = None,
    content_dir: Path | None = None,
    on: dt.date | None = None,
) -> list[RenderedDocument]:
    """Render a batch of invoices to PDFs in a warm pool and describe each one.

    Args:
        docs: The invoices to render (usually `plan_batch()`'s `to_render`).
        out_dir: The document store folder.
        workers: Worker processes; `default_workers()` (the usable cores) by default.
        content_dir: The content store (the repository's `content/` by default).
        on: The date the content must be in effect on (today by default).

    Returns:
        One `RenderedDocument` per invoice, in the order of `docs`.

    Raises:
        BatchRenderError: When some invoices failed. The others are rendered and stored,
            and the error carries them in `rendered` so they can still be recorded.
    """
    if not docs:
        return []
    used = resolve_content(load_registry(content_dir), on=on)
    with RenderPool(
        workers=min(workers or default_workers(), len(docs)), content_dir=content_dir
    ) as pool:
        result = pool.render(docs, Path(out_dir), used=used)
    if result.failed:
        raise BatchRenderError(result)
    return result.rendered
