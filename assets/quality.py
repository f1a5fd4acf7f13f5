"""Quality: Great Expectations suites as asset checks, and the invoice holds they produce.

A failing rule does not stop the whole night. Each suite's rules are asset checks on the
table they read (failing rows in the check's metadata), and the `invoice_holds` asset records
which invoices failed a hold rule: the documents step renders every other invoice and holds
those back, saying which and why.
"""


import dagster as dg

from orchestration.resources import Q2CSettings
from q2c.warehouse import connect
from quality.reuse import check_outcomes, validate_or_reuse_holds
from quality.suite import list_suites, load_suite

HOLDS_KEY = dg.AssetKey(["q2c_ops", "invoice_holds"])
_SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}


def suite_asset_key(relation: str) -> dg.AssetKey:
    """`raw_quickbooks.invoice` -> [raw_quickbooks, invoice]: the key of the checked table."""
    return dg.AssetKey(relation.split("."))


def _failures_table(failures: list[dict], more: int) -> str:
    lines = ["| invoice id | invoice number | field | value | reason |", "|---|---|---|---|---|"]
    for row in failures:
        cells = [row[name] for name in ("invoice_id", "invoice_number", "field", "value",
                                        "reason")]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    if more:
        lines.append(f"| … {more} more | | | | |")
    return "\n".join(lines)


def _build_suite_check(suite_name: str) -> dg.AssetChecksDefinition:
    suite = load_suite(suite_name)
    asset_key = suite_asset_key(suite.asset)
    specs = [
        dg.AssetCheckSpec(
            name=spec.name, asset=asset_key, description=spec.rule, blocking=False,
            metadata={"severity": spec.severity, "holds_invoice": spec.hold},
        )
        for spec in suite.expectations
    ]

    @dg.multi_asset_check(specs=specs, name=f"quality_suite_{suite_name}")
    def run_suite(context: dg.AssetCheckExecutionContext, q2c: Q2CSettings):
        """Validates the suite, or reports the last validation of the same inputs."""
        outcomes, validated_in = check_outcomes(
            q2c.load().warehouse_path, suite_name, context.run.run_id
        )
        if validated_in:
            context.log.info("suite %s: its inputs are unchanged since run %s; reporting that "
                             "run's results", suite_name, validated_in)

        for item in outcomes:
            yield dg.AssetCheckResult(
                check_name=item["name"],
                asset_key=asset_key,
                passed=item["success"],
                severity=_SEVERITY[item["severity"]],
                description=item["rule"],
                metadata={
                    "rows_checked": item["rows_checked"],
                    "failing_rows": item["failing_rows"],
                    "failing_invoice_ids": dg.MetadataValue.json(item["failing_invoice_ids"]),
                    "failures": dg.MetadataValue.md(
                        _failures_table(item["failures"], item["more_failures"])
                    ),
                    "validated_in_run": validated_in or context.run.run_id,
                },
            )

    return run_suite


quality_checks = [_build_suite_check(name) for name in list_suites()]


@dg.asset(
    key=HOLDS_KEY,
    group_name="quality",
    kinds={"great_expectations", "duckdb"},
    deps=[
        dg.AssetKey(["raw_quickbooks", "invoice"]),
        dg.AssetKey(["raw_quickbooks", "invoice_line"]),
        dg.AssetKey(["raw_quickbooks", "invoice_tax_line"]),
        dg.AssetKey(["core", "fct_invoices"]),
        dg.AssetKey(["core", "fct_invoice_lines"]),
    ],
)
def invoice_quality_holds(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """Invoices held back from documents and delivery because they failed a quality rule.

    Runs every suite in `quality/suites/`, replaces each suite's holds in
    `q2c_ops.invoice_holds` and quarantines the failing rows, so a fixed invoice is released
    by the next run and a held one never reaches a customer. An invoice with a row that
    could not be read at ingest is held too.
    """
    from quality.ingest_holds import hold_invoices_with_unreadable_rows
    from quality.runner import held_invoice_ids

    settings = q2c.load()
    failed_rules: dict[str, int] = {}
    validated_earlier: dict[str, str] = {}
    with connect(settings.warehouse_path) as conn:
        for name in list_suites():
            failed, validated_in = validate_or_reuse_holds(conn, name, context.run_id)
            failed_rules |= failed
            if validated_in:
                validated_earlier[name] = validated_in
                context.log.info("suite %s: inputs unchanged since run %s; its holds stand",
                                 name, validated_in)
        hold_invoices_with_unreadable_rows(conn, context.run_id)
        held = held_invoice_ids(conn)

    for invoice_id, reasons in sorted(held.items()):
        context.log.warning("invoice %s held back: %s", invoice_id, "; ".join(reasons))
    rows = [f"| {invoice_id} | {'; '.join(reasons)} |" for invoice_id, reasons in held.items()]
    return dg.MaterializeResult(
        metadata={
            "held_invoices": len(held),
            "failed_rules": dg.MetadataValue.json(failed_rules),
            "suites_unchanged_since": dg.MetadataValue.json(validated_earlier),
            "holds": dg.MetadataValue.md(
                "| invoice id | reasons |\n|---|---|\n" + "\n".join(rows[:100])
            ),
        }
    )
