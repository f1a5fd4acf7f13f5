"""The SQL a `dbt build` ran, run again straight on DuckDB: the baseline for dbt's overhead.

Everything comes from the build's own `manifest.json` and `run_results.json`, so models
added to the project are replayed without any list here. Each executed node's compiled SQL
runs once, on one DuckDB connection, in dependency order:
- a seed is read from its CSV with the column types dbt gave it;
- a model becomes `create or replace view|table <relation> as (<compiled SQL>)`;
- a data test or unit test becomes `select <fail_calc> from (<compiled SQL>)`, which is
  what dbt asks the warehouse for a test.
What dbt adds around that (relation cache queries, temporary relations and renames, column
comments from persist_docs) is not repeated: that is the overhead being measured.
"""

from __future__ import annotations

import heapq
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb

EXECUTED = ("success", "pass", "warn", "fail")
TABLE_LIKE = ("table", "incremental")


class ReplayError(RuntimeError):
    """A node of the build that cannot be replayed as plain SQL."""


@dataclass(frozen=True)
class ReplayedNode:
    unique_id: str
    resource_type: str
    name: str
    seconds: float
    dbt_seconds: float


@dataclass(frozen=True)
class _Step:
    unique_id: str
    resource_type: str
    name: str
    sql: str
    dbt_seconds: float
    seed_file: Path | None = None
    seed_relation: str | None = None
    seed_columns: tuple[tuple[str, str], ...] = ()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _definition(manifest: dict, unique_id: str) -> dict:
    for section in ("nodes", "unit_tests"):
        if unique_id in manifest.get(section, {}):
            return manifest[section][unique_id]
    raise ReplayError(f"{unique_id} ran in the build but is not in its manifest")


def build_order(manifest: dict, executed: list[str]) -> list[str]:
    """`executed` sorted so every node comes after what it depends on (dbt's run order
    breaks ties, so tests stay next to their model)."""
    rank = {unique_id: position for position, unique_id in enumerate(executed)}
    waiting: dict[str, int] = {}
    children: dict[str, list[str]] = defaultdict(list)
    for unique_id in executed:
        depends_on = _definition(manifest, unique_id)["depends_on"].get("nodes", [])
        parents = {p for p in depends_on if p in rank and p != unique_id}
        waiting[unique_id] = len(parents)
        for parent in parents:
            children[parent].append(unique_id)
    ready = [(rank[u], u) for u, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, unique_id = heapq.heappop(ready)
        order.append(unique_id)
        for child in children[unique_id]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (rank[child], child))
    if len(order) != len(executed):
        stuck = sorted(set(executed) - set(order))[:5]
        raise ReplayError(f"the build's dependencies form a cycle around {stuck}")
    return order


def seed_columns(database: Path, manifest: dict) -> dict[str, tuple[tuple[str, str], ...]]:
    """Each seed's columns and types as dbt created them in `database`."""
    columns: dict[str, tuple[tuple[str, str], ...]] = {}
    with duckdb.connect(str(database), read_only=True) as conn:
        for unique_id, node in manifest["nodes"].items():
            if node["resource_type"] != "seed":
                continue
            rows = conn.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [node["schema"], node["alias"] or node["name"]],
            ).fetchall()
            columns[unique_id] = tuple(rows)
    return columns


def _step(manifest: dict, result: dict,
          seeds: dict[str, tuple[tuple[str, str], ...]]) -> _Step | None:
    unique_id = result["unique_id"]
    node = _definition(manifest, unique_id)
    kind, name = node["resource_type"], node["name"]
    code = result.get("compiled_code") or node.get("compiled_code") or ""
    dbt_seconds = float(result.get("execution_time") or 0.0)
    if kind == "seed":
        return _Step(unique_id, kind, name, "", dbt_seconds,
                     seed_file=Path(node["root_path"]) / node["original_file_path"],
                     seed_relation=node["relation_name"], seed_columns=seeds[unique_id])
    if kind == "model":
        materialized = node["config"]["materialized"]
        relation = result.get("relation_name") or node["relation_name"]
        if materialized == "ephemeral":
            return None
        if materialized == "view":
            return _Step(unique_id, kind, name,
                         f"create or replace view {relation} as (\n{code}\n)", dbt_seconds)
        if materialized in TABLE_LIKE:
            return _Step(unique_id, kind, name,
                         f"create or replace table {relation} as (\n{code}\n)", dbt_seconds)
        raise ReplayError(f"{unique_id}: materialization {materialized!r} is not replayed; "
                          "teach bench/dbt_replay.py how dbt builds it")
    if kind in ("test", "unit_test"):
        fail_calc = node.get("config", {}).get("fail_calc") or "count(*)"
        return _Step(unique_id, kind, name,
                     f"select {fail_calc} from (\n{code}\n) as dbt_internal_test", dbt_seconds)
    raise ReplayError(f"{unique_id}: resource type {kind!r} is not replayed")


def plan(manifest: dict, run_results: dict,
         seeds: dict[str, tuple[tuple[str, str], ...]]) -> list[_Step]:
    """The replay steps for every node the build executed, in dependency order."""
    results = {r["unique_id"]: r for r in run_results["results"] if r["status"] in EXECUTED}
    steps = []
    for unique_id in build_order(manifest, list(results)):
        step = _step(manifest, results[unique_id], seeds)
        if step is not None:
            steps.append(step)
    return steps


def _schemas(manifest: dict, steps: list[_Step]) -> list[str]:
    found = set()
    for step in steps:
        node = _definition(manifest, step.unique_id)
        if step.resource_type in ("seed", "model"):
            found.add(f"{_quote(node['database'])}.{_quote(node['schema'])}")
    return sorted(found)


def _load_seed(conn: duckdb.DuckDBPyConnection, step: _Step) -> None:
    casts = ", ".join(
        f"cast({_quote(column)} as {data_type}) as {_quote(column)}"
        for column, data_type in step.seed_columns
    )
    conn.execute(
        f"create or replace table {step.seed_relation} as select {casts} "
        "from read_csv(?, header = true, all_varchar = true)",
        [str(step.seed_file)],
    )


def replay(database: Path, manifest: dict, steps: list[_Step]) -> list[ReplayedNode]:
    """Run every step on `database`; return each node's seconds. The connection's open,
    the schemas and the final checkpoint are counted in a node named `(connection)`."""
    timings: list[ReplayedNode] = []
    started = time.perf_counter()
    conn = duckdb.connect(str(database))
    try:
        conn.execute("set enable_progress_bar = false")
        for schema in _schemas(manifest, steps):
            conn.execute(f"create schema if not exists {schema}")
        overhead = time.perf_counter() - started
        for step in steps:
            began = time.perf_counter()
            try:
                if step.resource_type == "seed":
                    _load_seed(conn, step)
                else:
                    conn.execute(step.sql).fetchall()
            except duckdb.Error as exc:
                raise ReplayError(f"{step.unique_id} failed when replayed: {exc}") from exc
            timings.append(ReplayedNode(step.unique_id, step.resource_type, step.name,
                                        time.perf_counter() - began, step.dbt_seconds))
    finally:
        closing = time.perf_counter()
        conn.close()
    overhead += time.perf_counter() - closing
    timings.append(ReplayedNode("(connection)", "connection", "(connection)", overhead, 0.0))
    return timings
