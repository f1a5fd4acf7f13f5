"""The 10k nightly benchmark, run tiny: its three runs succeed and its table prints.

The benchmark runs as `make bench` runs it (`python -m bench.<module>`, its own process),
on about 20 invoices and a bare WeasyPrint sample of 4, so this checks the table and the
bench lines, not the figures.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INVOICES = 20
STAGES = ("ingest", "dbt", "checks", "render", "einvoice", "deliver", "reconcile", "report",
          "other", "run overhead", "total (wall)")
_NUMBER = r"(\d+(?:\.\d+)?)"


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> str:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("Q2C_", "DAGSTER_"))}
    env.update(Q2C_BENCH_NIGHTLY_INVOICES=str(INVOICES), Q2C_BENCH_NIGHTLY_SAMPLE="4",
               Q2C_RENDER_WORKERS="2", TMPDIR=str(tmp_path_factory.mktemp("bench")))
    result = subprocess.run([sys.executable, "-m", "bench.bench_nightly_10k"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=1800,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _row(output: str, stage: str) -> list[float]:
    line = next(line for line in output.splitlines() if line.startswith(stage))
    return [float(value) for value in line[len(stage):].split()]


def test_the_table_has_seconds_and_memory_of_every_stage_for_the_three_runs(output):
    header = next(line for line in output.splitlines() if line.startswith("stage"))

    assert header.split()[1:] == ["full", "s", "MiB", "unchanged", "s", "MiB", "1%",
                                  "changed", "s", "MiB"]
    for stage in STAGES:
        assert len(_row(output, stage)) == 6, stage
    # The stages and the time between steps add up to each run's wall time.
    for run in range(3):
        parts = sum(_row(output, stage)[2 * run] for stage in STAGES[:-1])
        assert parts == pytest.approx(_row(output, "total (wall)")[2 * run], abs=0.1 * 11)


def test_the_reruns_render_nothing_and_the_one_changed_invoice(output):
    """One in a hundred of the good invoices changes: with about 20, that is one, which is
    rendered again unless a hold keeps it back."""
    rendered = _row(output, "PDFs rendered")
    held = re.search(r"1 invoices changed, (\d) of them held back, (\d) PDFs rendered", output)

    assert rendered[0] > 0
    assert held is not None
    assert rendered[1:] == [0, 1 - int(held.group(1))] == [0, int(held.group(2))]


def test_each_target_is_printed_as_a_bench_line(output):
    for name, target in (("full_vs_render_floor", "<= 1.2"), ("unchanged_vs_full", "< 0.05"),
                         ("1pct_changed_vs_full", "< 0.1")):
        pattern = rf"^bench nightly_10k_{name}: {_NUMBER} \(target {re.escape(target)}; "
        assert re.search(pattern, output, re.MULTILINE), name
    assert re.search(rf"render floor: \d+ invoices / {_NUMBER} invoices/s", output)
