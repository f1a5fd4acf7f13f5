"""`dbt build` of the whole project on 200,000 generated invoices, beside the same SQL run
directly on DuckDB in the same run.

The raw layer (200k invoices, 1M invoice lines, 200k tax lines, 150k payments, 20k
accounts; see `bench/dbt_raw_layer.py`) is generated once and copied, so dbt and the raw
SQL each start from an identical fresh warehouse.

What is compared, and why it is fair:
- dbt: `dbt build` of everything the default sources enable: seeds, models, data tests and
  unit tests, with the profile's threads, as the nightly job runs it. Its peak memory is
  the resident memory of the dbt process tree, sampled every 0.1 s.
- raw SQL: the compiled SQL of every node that build executed, taken from its
  `run_results.json`, run on one DuckDB connection in dependency order
  (`bench/dbt_replay.py`). Tests are in both.
- fixed start-up: a no-op `dbt run --select none` after `dbt parse` in the same target
  folder, so it pays the same partial parse as the build. The overhead figure is
  (build - fixed) / raw.

Q2C_BENCH_DBT_INVOICES shrinks the run (default 200,000; everything else scales with it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.dbt_raw_layer import AS_OF, Sizes, generate
from bench.dbt_replay import ReplayedNode, ReplayError, plan, replay, seed_columns
from bench.memory import tree_rss_bytes

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
DEFAULT_INVOICES = 200_000
RATIO_TARGET = 1.30
FIXED_TARGET_SECONDS = 15.0
PEAK_MIB_TARGET = 2048
SLOWEST_SHOWN = 5


@dataclass(frozen=True)
class DbtRun:
    command: str
    seconds: float
    peak_mib: float
    returncode: int
    output: Path


class _PeakSampler:
    """Peak resident memory of one process and its children, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def _dbt(home: Path, warehouse: Path, *args: str) -> DbtRun:
    """One dbt command with this run's own target and log folders; output to a file."""
    output = home / ("dbt_" + "_".join(arg.strip("-") for arg in args) + ".out")
    command = [
        str(DBT), *args,
        "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
        "--target-path", str(home / "target"), "--log-path", str(home / "logs"),
        "--vars", json.dumps({"as_of_date": AS_OF.isoformat()}),
    ]
    env = os.environ | {"Q2C_WAREHOUSE": str(warehouse),
                        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    with output.open("w") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        sampler = _PeakSampler(process.pid)
        returncode = process.wait()
        seconds = time.perf_counter() - started
        peak = sampler.stop()
    return DbtRun(" ".join(["dbt", *args]), seconds, peak, returncode, output)


def _profile_threads() -> str:
    try:
        profiles = yaml.safe_load((DBT_PROJECT / "profiles.yml").read_text())
        return str(profiles["q2c"]["outputs"]["duckdb"]["threads"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return "?"


def _build_failures(run_results: dict) -> list[str]:
    return [
        f"{r['unique_id']} ({r['status']}): {(r.get('message') or '').strip()[:200]}"
        for r in run_results["results"] if r["status"] in ("error", "fail", "skipped")
    ]


def _report_failure(run: DbtRun, home: Path) -> int:
    results_path = home / "target" / "run_results.json"
    failures = []
    if results_path.is_file():
        failures = _build_failures(json.loads(results_path.read_text()))
    print(f"{run.command} failed (exit {run.returncode}); warehouse and logs kept in {home}",
          file=sys.stderr)
    for line in failures[:20]:
        print(f"  {line}", file=sys.stderr)
    if not failures:
        print(run.output.read_text()[-4000:], file=sys.stderr)
    print(f"bench dbt_build_seconds: FAILED (failed or skipped: {len(failures)}, "
          f"{', '.join(f.split(' ')[0] for f in failures[:3])}) "
          f"(target raw*{RATIO_TARGET}+{FIXED_TARGET_SECONDS:.0f})")
    return 1


def _sum(timings: list[ReplayedNode], *kinds: str) -> float:
    return sum(t.seconds for t in timings if t.resource_type in kinds)


def _count(timings: list[ReplayedNode], kind: str) -> int:
    return sum(1 for t in timings if t.resource_type == kind)


def _print_table(rows: list[tuple[str, float, float | None]]) -> None:
    print(f"{'stage':<52} {'seconds':>8} {'peak MiB':>9}")
    for label, seconds, peak in rows:
        shown = f"{peak:>9.0f}" if peak is not None else f"{'-':>9}"
        print(f"{label:<52} {seconds:>8.1f} {shown}")


def _print_slowest(timings: list[ReplayedNode]) -> None:
    models = sorted((t for t in timings if t.resource_type == "model"),
                    key=lambda t: t.seconds, reverse=True)[:SLOWEST_SHOWN]
    print(f"{'slowest models (dbt: execute time in the build)':<52} {'dbt s':>8} {'raw s':>9}")
    for node in models:
        print(f"  {node.name:<50} {node.dbt_seconds:>8.1f} {node.seconds:>9.1f}")


def main() -> int:
    sizes = Sizes(int(os.environ.get("Q2C_BENCH_DBT_INVOICES", DEFAULT_INVOICES)))
    home = Path(tempfile.mkdtemp(prefix="q2c-bench-dbt-"))
    load_before = os.getloadavg()[0]
    generated, dbt_copy, raw_copy = (home / folder / "warehouse.duckdb"
                                     for folder in ("generated", "dbt", "raw"))

    started = time.perf_counter()
    counts = generate(generated, sizes)
    generate_seconds = time.perf_counter() - started
    for copy in (dbt_copy, raw_copy):
        copy.parent.mkdir(parents=True)
        shutil.copyfile(generated, copy)

    parse = _dbt(home, dbt_copy, "parse")
    if parse.returncode != 0:
        return _report_failure(parse, home)
    noop = _dbt(home, dbt_copy, "run", "--select", "none")
    if noop.returncode != 0:
        return _report_failure(noop, home)
    build = _dbt(home, dbt_copy, "build")
    if build.returncode != 0:
        return _report_failure(build, home)

    manifest = json.loads((home / "target" / "manifest.json").read_text())
    run_results = json.loads((home / "target" / "run_results.json").read_text())
    steps = plan(manifest, run_results, seed_columns(dbt_copy, manifest))
    sampler = _PeakSampler(os.getpid())
    try:
        timings = replay(raw_copy, manifest, steps)
    except ReplayError as exc:
        print(f"{exc}; warehouse and logs kept in {home}", file=sys.stderr)
        print("bench dbt_overhead: FAILED (the raw SQL replay failed)")
        return 1
    finally:
        replay_peak = sampler.stop()

    raw_seconds = sum(t.seconds for t in timings)
    fixed = noop.seconds
    ratio = (build.seconds - fixed) / raw_seconds
    tests = _count(timings, "test")
    unit_tests = _count(timings, "unit_test")
    print(f"dbt benchmark: {counts['quickbooks.invoice']:,} invoices, "
          f"{counts['quickbooks.invoice_line']:,} invoice lines, "
          f"{counts['quickbooks.invoice_tax_line']:,} tax lines, "
          f"{counts['quickbooks.payment']:,} payments "
          f"({counts['quickbooks.payment_line']:,} payment lines), "
          f"{counts['salesforce.account']:,} accounts; as of {AS_OF}; machine load "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (1-minute average)")
    _print_table([
        ("generate raw layer (DuckDB SQL)", generate_seconds, None),
        ("dbt parse (full parse)", parse.seconds, parse.peak_mib),
        ("dbt run --select none (fixed start-up)", noop.seconds, noop.peak_mib),
        (f"dbt build ({_profile_threads()} threads)", build.seconds, build.peak_mib),
        (f"raw SQL: {_count(timings, 'seed')} seeds", _sum(timings, "seed"), None),
        (f"raw SQL: {_count(timings, 'model')} models", _sum(timings, "model"), None),
        (f"raw SQL: {tests} data tests, {unit_tests} unit tests",
         _sum(timings, "test", "unit_test"), None),
        ("raw SQL: connect, schemas, checkpoint", _sum(timings, "connection"), None),
        ("raw SQL total (1 connection, dependency order)", raw_seconds, replay_peak),
    ])
    _print_slowest(timings)
    print(f"bench dbt_overhead: {ratio:.2f}x raw SQL + {fixed:.1f} s fixed "
          f"(target < {RATIO_TARGET:.2f}x + {FIXED_TARGET_SECONDS:.0f} s)")
    print(f"bench dbt_build_seconds: {build.seconds:.1f} "
          f"(target raw*{RATIO_TARGET}+{FIXED_TARGET_SECONDS:.0f} = "
          f"{raw_seconds * RATIO_TARGET + FIXED_TARGET_SECONDS:.1f})")
    peak = max(parse.peak_mib, noop.peak_mib, build.peak_mib)
    print(f"bench dbt_peak_memory_mib: {peak:.0f} "
          f"(target < {PEAK_MIB_TARGET})")
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
