"""How a dbt build step decides what to run (`q2c.dbt_changes`), in Dagster terms.

The step's models are its asset specs. A model the plan keeps that another step reads
still gets its output, marked `rebuilt: false` with the reason, and the blocking tests on
it their last result, so the steps downstream (quality, documents) run as in any night.
A step runs everything, and records nothing, when it is asked for some of its models only
(a materialization picked in the UI) or when dbt targets another warehouse than the
DuckDB file q2c fingerprints. The run tag `q2c/full-build` set to `true` builds everything
and records it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.dbt_project import DBT_PROJECT_DIR, q2c_dbt_project
from q2c.dbt_changes import (
    FULL,
    BuildPlan,
    plan_build,
    project_fingerprint,
    record_build,
)
from q2c.settings import Settings
from q2c.warehouse import connect

FULL_BUILD_TAG = "q2c/full-build"
_UNIQUE_ID = "dagster_dbt/unique_id"
_FINGERPRINTED_TARGET = "duckdb"


def plan_for(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: Settings,
             label: str, dbt_vars: dict) -> BuildPlan | None:
    """The plan of this build step, or None when it must build all it was asked for."""
    target = dbt.target or os.environ.get("DBT_TARGET") or _FINGERPRINTED_TARGET
    if target != _FINGERPRINTED_TARGET:
        context.log.info("dbt %s: target %s is not fingerprinted; building everything",
                         label, target)
        return None
    if context.selected_asset_keys != set(context.assets_def.keys):
        return None

    nodes = {spec.metadata[_UNIQUE_ID] for spec in context.assets_def.specs}
    project = project_fingerprint(DBT_PROJECT_DIR)
    manifest = json.loads(q2c_dbt_project().manifest_path.read_text())
    with connect(settings.warehouse_path, read_only=True) as conn:
        plan = plan_build(conn, manifest, nodes, label, project, dbt_vars)
    if context.run.tags.get(FULL_BUILD_TAG) == "true":
        plan.action, plan.build, plan.keep, plan.exclude = FULL, nodes, [], []
        plan.reason = f"run tag {FULL_BUILD_TAG}=true"
    return plan


def selection_args(plan: BuildPlan | None) -> list[str]:
    """dbt arguments narrowing the step's own selection to the plan's models."""
    if plan is None or not plan.exclude:
        return []
    return ["--exclude", " ".join(plan.exclude)]


def kept_outputs(context: dg.AssetExecutionContext,
                 plan: BuildPlan | None) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """An output for each model this build did not run that another step reads, and the
    last result of each blocking test on those models or on unchanged sources.

    Dagster skips a step whose input was not produced; these let the steps downstream
    (quality, documents, reports) run as in any night, gated by the same test results as
    the rows they read. A model no other step reads gets no event, as it was not
    materialized. Parents come first, and none of them is downstream of a model the build
    ran, so they come before its events."""
    if plan is None:
        return
    specs = {spec.metadata[_UNIQUE_ID]: spec for spec in context.assets_def.specs}
    read_elsewhere = _read_by_other_steps(context)
    for uid in plan.keep:
        if specs[uid].key not in read_elsewhere:
            continue
        yield dg.Output(
            None,
            output_name=context.assets_def.get_output_name_for_asset_key(specs[uid].key),
            metadata={"rebuilt": False, "why_not_rebuilt": plan.reason,
                      "unchanged_since_run": plan.since_run or ""},
        )

    own_keys = set(context.assets_def.keys)
    for spec in context.assets_def.check_specs:
        uid = spec.metadata.get(_UNIQUE_ID)
        result = plan.tests.get(uid)
        gates = spec.asset_key in read_elsewhere or spec.asset_key not in own_keys
        if not (spec.blocking and gates and result and uid in plan.still_valid_tests):
            continue
        yield dg.AssetCheckResult(
            asset_key=spec.asset_key, check_name=spec.name, passed=result["passed"],
            severity=dg.AssetCheckSeverity(result["severity"]),
            metadata={"tested_in_run": result["run_id"], "retested": False},
        )


def record(context: dg.AssetExecutionContext, settings: Settings, label: str,
           plan: BuildPlan | None, events: list) -> None:
    """After the step's dbt call succeeded (or was not needed): what it was built from,
    and the results of the tests dbt ran."""
    if plan is None:
        return
    tests = {spec.key: spec.metadata.get(_UNIQUE_ID) for spec in context.assets_def.check_specs}
    results = {}
    for event in events:
        if not isinstance(event, dg.AssetCheckResult):
            continue
        uid = tests.get(dg.AssetCheckKey(event.asset_key, event.check_name))
        if uid:
            results[uid] = {"passed": event.passed, "severity": event.severity.value,
                            "run_id": context.run_id}
    with connect(settings.warehouse_path) as conn:
        record_build(conn, label, plan, context.run_id, results)


def _read_by_other_steps(context: dg.AssetExecutionContext) -> set[dg.AssetKey]:
    """This step's assets that an asset or check of another step of the run depends on."""
    graph = context.job_def.asset_layer.asset_graph
    own_keys, own_checks = set(context.assets_def.keys), set(context.assets_def.check_keys)
    read = set()
    for key in own_keys:
        if not graph.has(key):
            continue
        node = graph.get(key)
        if node.child_keys - own_keys or node.check_keys - own_checks:
            read.add(key)
    return read
