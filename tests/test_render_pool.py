"""The render pool: sized to the usable cores, warm workers, PDFs written by the workers."""

from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path

import pytest
from test_documents import CONTENT_DIR, make_invoice

import q2c.documents.render as render_module
from q2c.content.registry import load_registry
from q2c.documents import pool as pool_module
from q2c.documents.pool import RenderFailure, RenderPool, default_workers
from q2c.documents.render import resolve_content


def _invoice(number: int, lines: int):
    prices = tuple((f"Service line {i}", "1", "10.00") for i in range(1, lines + 1))
    return make_invoice(number=f"INV-2026-{number:04d}", language="en", locale="en_GB",
                        prices=prices, discount="0")


def test_default_workers_counts_only_the_cores_the_process_may_use():
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        assert default_workers() == 1
    finally:
        os.sched_setaffinity(0, allowed)


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [("150000 100000\n", 1.5), ("400000 100000\n", 4.0), ("max 100000\n", None)],
)
def test_a_cgroup_cpu_quota_is_read_from_cpu_max(tmp_path, cpu_max, cpus):
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)

    assert pool_module._cgroup_cpu_quota(path) == cpus


def test_no_cgroup_file_means_no_quota(tmp_path):
    assert pool_module._cgroup_cpu_quota(tmp_path / "cpu.max") is None


def test_the_pool_keeps_the_order_of_the_batch_and_the_workers_store_the_pdfs(tmp_path):
    # Line counts out of order: the pool starts the longest, but answers in batch order.
    docs = [_invoice(n, lines) for n, lines in enumerate([3, 45, 1, 90, 12], start=1)]
    used = resolve_content(load_registry(CONTENT_DIR))

    with RenderPool(workers=2) as pool:
        result = pool.render(docs, tmp_path, used=used)

    assert result.failed == []
    assert [r.invoice_number for r in result.rendered] == [d.invoice_number for d in docs]
    for rendered in result.rendered:
        data = Path(rendered.path).read_bytes()
        assert data.startswith(b"%PDF-")
        assert hashlib.sha256(data).hexdigest() == rendered.content_hash
        assert len(data) == rendered.bytes
    assert 1 <= len(pool.worker_peak_bytes) <= 2
    # A worker holds at least an interpreter and WeasyPrint: tens of MiB, not bytes.
    assert all(peak > 20 * 2**20 for peak in pool.worker_peak_bytes.values())
    assert pool.peak_worker_mib() == max(pool.worker_peak_bytes.values()) / 2**20


def test_workers_that_cannot_load_the_content_fail_each_invoice_with_the_cause(tmp_path):
    docs = [_invoice(1, 2), _invoice(2, 2)]
    used = resolve_content(load_registry(CONTENT_DIR))
    missing = tmp_path / "no-content-here"

    with RenderPool(workers=1, content_dir=missing) as pool:
        result = pool.render(docs, tmp_path / "documents", used=used)

    assert result.rendered == []
    assert [f.invoice_number for f in result.failed] == ["INV-2026-0001", "INV-2026-0002"]
    assert all(isinstance(f, RenderFailure) and str(missing) in f.error for f in result.failed)
    assert not (tmp_path / "documents").exists()


def test_a_worker_loads_fonts_and_parses_each_stylesheet_once(tmp_path, monkeypatch):
    """Run a worker's start-up and three invoices in this process, counting the loads."""
    counts = {"css": 0, "fonts": 0}

    def counting(name, original):
        def make(*args, **kwargs):
            counts[name] += 1
            return original(*args, **kwargs)
        return make

    monkeypatch.setattr(render_module, "CSS", counting("css", render_module.CSS))
    monkeypatch.setattr(render_module, "FontConfiguration",
                        counting("fonts", render_module.FontConfiguration))
    monkeypatch.setattr(pool_module, "_worker", {})
    used = resolve_content(load_registry(CONTENT_DIR))

    try:
        pool_module._init_worker(str(CONTENT_DIR))
        # What the start-up loaded is kept out of the collector's full scans.
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    after_start = dict(counts)
    outcomes = [pool_module._render_in_worker((_invoice(n, 4 * n), used, str(tmp_path)))
                for n in (1, 2, 3)]

    assert [type(outcome).__name__ for outcome, _, _ in outcomes] == ["RenderedDocument"] * 3
    assert {pid for _, pid, _ in outcomes} == {os.getpid()}
    assert counts["fonts"] == 1
    assert after_start["css"] >= 1  # the warm-up parsed the theme stylesheet
    assert counts == after_start
