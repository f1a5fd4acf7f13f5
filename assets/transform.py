"""dbt models as assets: staging, intermediate, core marts and KPI marts.

Each dbt model is an asset keyed by its warehouse relation ([schema, model]) and grouped by
its layer; dbt tests become asset checks, including source tests, which land on the raw
assets of the ingest layer. One `dbt build` runs per materialization, of the models
downstream of the sources that changed since the last good build (`assets.dbt_changes`).
"""


import contextlib
import io
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from assets import dbt_changes
from assets.ingest import raw_asset_key
from orchestration.dbt_project import q2c_dbt_project
from orchestration.resources import Q2CSettings, dbt_environment_applied, dbt_source_vars
from q2c.dbt_changes import SKIP
from q2c.warehouse import OPS_SCHEMA, connect

_LAYER_BY_FOLDER = {"staging": "staging", "intermediate": "intermediate"}

# q2c's own records that dbt reads after delivery, keyed like the tables the delivery
# assets export them to (`q2c_ops.<table>`).
OPS_SOURCES = {"q2c_delivery", "q2c_review", "q2c_collections", "q2c_portal"}
# The delivery marts and their reporting views are built after the outbox has run.
DELIVERY_MARTS = "path:models/marts/delivery path:models/reporting/delivery"
DBT_RUNS_KEPT = 10
_PREVIEW_MODELS = {
    "kpi_ar_aging", "kpi_dso_monthly", "dim_accounts", "fct_invoices", "fct_deliveries",
    "kpi_on_time_delivery", "kpi_approval_sla", "mart_review_queue",
    "mart_delivery_dead_letters",
}


class Q2CDbtTranslator(DagsterDbtTranslator):
    """Keys mirror the warehouse; groups follow the dbt folder; sources are the raw assets."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            source = dbt_resource_props["source_name"]
            if source in OPS_SOURCES:
                return dg.AssetKey([OPS_SCHEMA, dbt_resource_props["name"]])
            return raw_asset_key(source, dbt_resource_props["name"])
        schema = dbt_resource_props.get("config", {}).get("schema") or "main"
        name = dbt_resource_props.get("alias") or dbt_resource_props["name"]
        return dg.AssetKey([schema, name])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "staging"
        fqn = dbt_resource_props.get("fqn", [])
        folder = fqn[1] if len(fqn) > 2 else "dbt"
        if folder == "marts" and len(fqn) > 3:
            return fqn[2]
        return _LAYER_BY_FOLDER.get(folder, folder)


TRANSLATOR = Q2CDbtTranslator(
    settings=DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True)
)


def _preview(relation: str, warehouse_path) -> dict[str, dg.MetadataValue]:
    with connect(warehouse_path, read_only=True) as conn:
        frame = conn.sql(f"select * from {relation} limit 10").df()
        count = conn.sql(f"select count(*) from {relation}").fetchone()[0]
    return {
        "dagster/row_count": dg.MetadataValue.int(int(count)),
        "preview": dg.MetadataValue.md(frame.to_markdown(index=False)),
    }


def _prune_old_runs(folder: Path, keep: int) -> None:
    """Each dbt build leaves about 10 MB of artifacts; keep those of the latest runs only."""
    runs = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _keep_dbt_log(text: str, home: Path, run_id: str) -> Path:
    """dagster-dbt echoes every dbt line to stdout; q2c keeps them in a file per run instead."""
    path = home / "logs" / f"dbt-build-{run_id}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _dbt_totals(output: io.StringIO) -> str:
    found = re.findall(r"Done\. (PASS=\d+ WARN=\d+ ERROR=\d+ SKIP=\d+)", output.getvalue())
    return found[-1] if found else "no totals (see the log)"


@dbt_assets(
    manifest=q2c_dbt_project().manifest_path,
    project=q2c_dbt_project(),
    dagster_dbt_translator=TRANSLATOR,
    exclude=DELIVERY_MARTS,
)
def q2c_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, q2c: Q2CSettings):
    """Build the selected models and run their tests in one `dbt build`.

    Events are held until dbt exits: DuckDB lets one process write the file, and the
    previews of the marts are read from it after dbt has let go.
    """
    yield from _dbt_build(context, dbt, q2c, "build")


@dbt_assets(
    manifest=q2c_dbt_project().manifest_path,
    project=q2c_dbt_project(),
    dagster_dbt_translator=TRANSLATOR,
    select=DELIVERY_MARTS,
    name="q2c_delivery_marts",
)
def q2c_delivery_marts(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, q2c: Q2CSettings
):
    """The delivery and review marts, built after the outbox ran from what it recorded."""
    yield from _dbt_build(context, dbt, q2c, "delivery-marts")


def _dbt_build(context: dg.AssetExecutionContext, dbt: DbtCliResource, q2c: Q2CSettings,
               label: str):
    settings = q2c.load()
    dbt_vars = {"as_of_date": settings.run_date.isoformat(), **dbt_source_vars(settings)}
    with dbt_environment_applied(settings):
        plan = dbt_changes.plan_for(context, dbt, settings, label, dbt_vars)
        if plan is not None:
            context.log.info("dbt %s: %s build, %s", label, plan.action, plan.reason)
        events = [] if plan and plan.action == SKIP else _run_dbt(
            context, dbt, settings, label, ["--vars", json.dumps(dbt_vars),
                                            *dbt_changes.selection_args(plan)])
    dbt_changes.record(context, settings, label, plan, events)
    yield from dbt_changes.kept_outputs(context, plan)

    for event in events:
        key = getattr(event, "asset_key", None)
        if isinstance(event, dg.Output) and key is None:
            key = context.asset_key_for_output(event.output_name)
        if isinstance(event, dg.Output) and key is not None and key.path[-1] in _PREVIEW_MODELS:
            event = event.with_metadata(
                {**event.metadata, **_preview(".".join(key.path), settings.warehouse_path)}
            )
        yield event


def _run_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings, label: str,
             args: list[str]) -> list:
    target_path = settings.home / "dbt_runs" / f"{context.run_id}-{label}"
    _reuse_last_parse(target_path)
    dbt_output = io.StringIO()
    try:
        with contextlib.redirect_stdout(dbt_output):
            invocation = dbt.cli(["build", *args], context=context, target_path=target_path)
            return list(invocation.stream())
    finally:
        log_path = _keep_dbt_log(dbt_output.getvalue(), settings.home, f"{context.run_id}-{label}")
        _prune_old_runs(target_path.parent, keep=DBT_RUNS_KEPT)
        context.log.info("dbt %s: %s; full dbt log in %s", label, _dbt_totals(dbt_output),
                         log_path)


def _reuse_last_parse(target_path: Path) -> None:
    """Start dbt from the parse of the latest build, so it parses only the files changed
    since (or everything, when the vars or the profile changed). Without it every build
    parses the whole project again, tens of seconds before the first model runs."""
    earlier = sorted(target_path.parent.glob("*/partial_parse.msgpack"),
                     key=lambda path: path.stat().st_mtime)
    if earlier:
        target_path.mkdir(parents=True, exist_ok=True)
        shutil.copy(earlier[-1], target_path / "partial_parse.msgpack")
