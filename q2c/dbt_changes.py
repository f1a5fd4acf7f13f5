"""Which dbt models a build must run, from what changed since the last successful build.

A dbt build of the whole project takes a minute or more, most of it fixed cost per model,
while a night often brings no new rows at all, or new rows in a few raw tables. After each
successful build q2c records, per build step, the fingerprint of the dbt project (every
file dbt reads, and the versions of dbt and its adapter), the vars it ran with, and the
content fingerprint of every source relation upstream of the step's models
(`q2c.changes`). The next build compares:

- nothing recorded, the project changed, a var other than the as-of date changed, or a
  model's relation is missing from the warehouse: build everything, as before;
- otherwise build what is downstream of the sources that changed (`dbt build --select
  source:<changed>+`, expressed as an exclusion of the rest) and of the models that read
  the as-of date when it moved, or the clock, with their tests;
- nothing to build: run no dbt at all.

A model reads the as-of date through a var (`as_of_date`), directly or through a macro;
one that falls back to the time the dbt run started (`run_started_at`) for a var q2c does
not pass reads the clock and is built every time. A build that fails records nothing, so
the next one compares with the last good build and builds again everything downstream of
what changed since. Models that read no source (a date spine, a seed) are rebuilt only
with everything else.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from q2c import changes

SCOPE = "dbt"
FULL = "full"
PARTIAL = "partial"
SKIP = "skip"
_PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml",
                  "selectors.yml", "package-lock.yml")
_PROJECT_FOLDERS = ("models", "macros", "seeds", "tests", "snapshots", "analyses")
_BUILT_TYPES = ("model", "seed", "snapshot")
_EXAMPLES = 5
# The vars that stand for "now" in the models; any other var that changes builds everything.
DATE_VARS = ("as_of_date", "as_of_timestamp")
_VAR_READ = re.compile(r"""var\(\s*['"](\w+)['"]""")


@dataclass
class BuildPlan:
    """What one dbt build step is to do, and why, in words for logs and metadata."""

    action: str
    reason: str
    fingerprint: str
    sources: dict[str, str]
    dbt_vars: dict[str, object] = field(default_factory=dict)
    build: set[str] = field(default_factory=set)
    keep: list[str] = field(default_factory=list)  # parents before children
    changed_sources: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    since_run: str | None = None
    # The last result of each test (by unique id), and the tests whose every parent this
    # build keeps: their last result still holds.
    tests: dict[str, dict] = field(default_factory=dict)
    still_valid_tests: set[str] = field(default_factory=set)


def project_fingerprint(project_dir: Path) -> str:
    """Every file dbt reads in the project, with the versions of dbt and its adapter."""
    project_dir = Path(project_dir)
    paths = [project_dir / name for name in _PROJECT_FILES if (project_dir / name).is_file()]
    for folder in _PROJECT_FOLDERS:
        paths += [p for p in (project_dir / folder).rglob("*") if p.is_file()]
    versions = [_version(name) for name in ("dbt-core", "dbt-duckdb")]
    return changes.sha256_text(changes.files_sha256(paths, project_dir), *versions)


def plan_build(
    conn: duckdb.DuckDBPyConnection,
    manifest: Mapping,
    nodes: Iterable[str],
    label: str,
    project: str,
    dbt_vars: Mapping[str, object],
) -> BuildPlan:
    """Decide what the build step `label` must run of its `nodes` (dbt unique ids).

    `project` is `project_fingerprint` of the project and `dbt_vars` the vars this build
    runs with.
    """
    nodes = set(nodes)
    sources = _upstream_sources(manifest, nodes)
    current = {uid: changes.relation_fingerprint(conn, *_source_relation(manifest, uid))
               for uid in sorted(sources)}
    plan = BuildPlan(FULL, "", project, current, dict(dbt_vars), build=set(nodes))
    state = changes.recorded(conn, SCOPE, label)
    if state is None:
        plan.reason = "no earlier successful build of these models on this warehouse"
        return plan
    plan.since_run = state.run_id
    if state.fingerprint != project:
        plan.reason = f"the dbt project or dbt's version changed since run {state.run_id}"
        return plan
    earlier_vars = state.details.get("vars", {})
    moved = sorted(name for name in set(earlier_vars) | set(dbt_vars)
                   if earlier_vars.get(name) != dbt_vars.get(name))
    if set(moved) - set(DATE_VARS):
        plan.reason = f"the vars {', '.join(moved)} changed since run {state.run_id}"
        return plan
    missing = _missing_relations(conn, manifest, nodes)
    if missing:
        plan.reason = (f"{len(missing)} models are missing from the warehouse "
                       f"({', '.join(missing[:_EXAMPLES])})")
        return plan

    changed = sorted(uid for uid, digest in current.items()
                     if state.details.get("sources", {}).get(uid) != digest)
    readers = _reading(manifest, set(moved), set(dbt_vars))
    plan.changed_sources = [_source_name(manifest, uid) for uid in changed]
    plan.build = (_downstream(manifest, [*changed, *readers]) | readers) & nodes
    plan.keep = _in_dependency_order(manifest, nodes - plan.build)
    plan.tests = state.details.get("tests", {})
    plan.still_valid_tests = (
        _tests_on(manifest, set(plan.keep) | (sources - set(changed))) - readers)
    why = _why(plan, state.run_id, moved, earlier_vars, readers & nodes)
    if not plan.build:
        plan.action = SKIP
        plan.reason = (f"{why}, but none of these models reads them" if why
                       else f"nothing these models read changed since run {state.run_id}")
        return plan
    plan.action = PARTIAL
    plan.reason = (f"{why}: {len(plan.build)} of {len(nodes)} models and seeds are "
                   "downstream")
    unchanged_sources = sorted(sources - set(changed))
    plan.exclude = ([_selector(manifest, uid) for uid in sorted(plan.keep)]
                    + [f"source:{_source_name(manifest, uid)}" for uid in unchanged_sources])
    return plan


def record_build(conn: duckdb.DuckDBPyConnection, label: str, plan: BuildPlan,
                 run_id: str, tests: Mapping[str, dict] | None = None) -> None:
    """After a successful build (or a skip): these sources are what the models were built
    from. A partial build keeps the models it did not run, which were built from the same
    sources, so recording every source's current fingerprint is right for them too.

    `tests` are the results of the tests this build ran; the earlier results of the tests
    whose every parent was kept stay, since those ran on the same rows."""
    kept = {uid: result for uid, result in plan.tests.items()
            if uid in plan.still_valid_tests and plan.action != FULL}
    changes.record(conn, SCOPE, label, plan.fingerprint, run_id, {
        "sources": plan.sources, "vars": plan.dbt_vars, "action": plan.action,
        "tests": {**kept, **(tests or {})},
    })


def _why(plan: BuildPlan, since_run: str, moved: list[str], earlier_vars: Mapping,
         readers: set[str]) -> str:
    parts = []
    if plan.changed_sources:
        parts.append(f"{len(plan.changed_sources)} sources changed since run {since_run} "
                     f"({_listed(plan.changed_sources)})")
    if moved:
        parts.append(", ".join(f"{name} moved from {earlier_vars.get(name)} to "
                               f"{plan.dbt_vars.get(name)}" for name in moved))
    if readers:
        parts.append(f"{len(readers)} of these models read the as-of date or the clock")
    return "; ".join(parts)


def _reading(manifest: Mapping, names: set[str], passed: set[str]) -> set[str]:
    """Nodes (models and tests) that read a var of `names`, or the time the dbt run started
    for want of a var among `passed`, in their own code or through macros."""

    def reads(code: str) -> bool:
        used = set(_VAR_READ.findall(code))
        return bool(used & names) or ("run_started_at" in code and not used & passed)

    macros = manifest.get("macros", {})
    reading = {uid for uid, macro in macros.items() if reads(macro.get("macro_sql") or "")}
    grown = True
    while grown:
        callers = {uid for uid, macro in macros.items() if uid not in reading
                   and set(macro.get("depends_on", {}).get("macros", [])) & reading}
        reading |= callers
        grown = bool(callers)
    return {uid for uid, node in manifest["nodes"].items()
            if reads(node.get("raw_code") or "")
            or set(node.get("depends_on", {}).get("macros", [])) & reading}


def _version(distribution: str) -> str:
    try:
        return f"{distribution}=={importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{distribution} not installed"


def _ancestors(manifest: Mapping, start: Iterable[str]) -> set[str]:
    parents, seen, pending = manifest["parent_map"], set(), list(start)
    while pending:
        for parent in parents.get(pending.pop(), []):
            if parent not in seen:
                seen.add(parent)
                pending.append(parent)
    return seen


def _downstream(manifest: Mapping, start: Iterable[str]) -> set[str]:
    children, seen, pending = manifest["child_map"], set(), list(start)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in seen:
                seen.add(child)
                pending.append(child)
    return seen


def _tests_on(manifest: Mapping, unchanged: set[str]) -> set[str]:
    """The tests whose every parent is in `unchanged`."""
    return {uid for uid, node in manifest["nodes"].items()
            if node["resource_type"] == "test"
            and set(manifest["parent_map"].get(uid, [])) <= unchanged}


def _in_dependency_order(manifest: Mapping, ids: set[str]) -> list[str]:
    """`ids` with every node after its parents (Dagster takes a step's outputs so)."""
    parents, ordered, placed = manifest["parent_map"], [], set()

    def place(uid: str) -> None:
        placed.add(uid)
        for parent in parents.get(uid, []):
            if parent in ids and parent not in placed:
                place(parent)
        ordered.append(uid)

    for uid in sorted(ids):
        if uid not in placed:
            place(uid)
    return ordered


def _upstream_sources(manifest: Mapping, nodes: set[str]) -> set[str]:
    return {uid for uid in _ancestors(manifest, nodes) if uid.startswith("source.")}


def _source_relation(manifest: Mapping, uid: str) -> tuple[str, str]:
    source = manifest["sources"][uid]
    return source["schema"], source.get("identifier") or source["name"]


def _source_name(manifest: Mapping, uid: str) -> str:
    source = manifest["sources"][uid]
    return f"{source['source_name']}.{source['name']}"


def _selector(manifest: Mapping, uid: str) -> str:
    return "fqn:" + ".".join(manifest["nodes"][uid]["fqn"])


def _missing_relations(conn: duckdb.DuckDBPyConnection, manifest: Mapping,
                       nodes: set[str]) -> list[str]:
    existing = changes.existing_relations(conn)
    missing = []
    for uid in sorted(nodes):
        node = manifest["nodes"].get(uid)
        if node is None or node["resource_type"] not in _BUILT_TYPES:
            continue
        if node.get("config", {}).get("materialized") == "ephemeral":
            continue
        relation = (node["schema"].lower(), (node.get("alias") or node["name"]).lower())
        if relation not in existing:
            missing.append(".".join(relation))
    return missing


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_EXAMPLES])
    return shown + (f" and {len(names) - _EXAMPLES} more" if len(names) > _EXAMPLES else "")
