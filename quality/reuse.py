"""The last results of a suite, reused while the data and the rules it checked are the same.

A suite's outcome depends on its file (query and rules), the relations its query reads,
the code that runs it and the ISO 4217 list it is given. `suite_fingerprint` digests all
of them, each relation by its content (`q2c.changes`). When the fingerprint is the one a
recorded validation had, validating again would find the same failing rows, so the step
reports the recorded outcome and says from which run it is.

Two steps validate each suite: the asset check (results only) and the holds asset (results,
holds and quarantine in `q2c_ops`). Each records its own state, since only the second one
writes holds: the holds are reused only while the latest recorded results of the suite are
still the ones of that validation.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from q2c import changes
from q2c.money import MINOR_UNITS
from q2c.warehouse import OPS_SCHEMA, connect

from .suite import Suite

CHECK_SCOPE = "quality-check"
# Failing rows kept per rule for the check's metadata table.
FAILURES_KEPT = 50
HOLDS_SCOPE = "quality-holds"
_CODE = ("runner.py", "gx_validate.py", "frame.py", "reasons.py", "suite.py")


def suite_fingerprint(conn: duckdb.DuckDBPyConnection, suite: Suite) -> str:
    """Digest of everything a validation of `suite` depends on, read from the warehouse."""
    relations = changes.relations_read_by(suite.query, changes.existing_relations(conn))
    inputs = changes.relations_fingerprint(conn, relations)
    code = [(Path(__file__).parent / name).read_bytes() for name in _CODE]
    definition = suite.path.read_bytes() if suite.path else suite.query.encode()
    return changes.sha256_text(definition, json.dumps(inputs, sort_keys=True),
                               json.dumps(sorted(MINOR_UNITS.items())), *code)


def reusable_check(conn: duckdb.DuckDBPyConnection, suite: Suite,
                   fingerprint: str) -> changes.RecordedState | None:
    """The asset check's last outcome of `suite`, if its inputs are unchanged."""
    state = changes.recorded(conn, CHECK_SCOPE, suite.name)
    return state if state is not None and state.fingerprint == fingerprint else None


def reusable_holds(conn: duckdb.DuckDBPyConnection, suite: Suite,
                   fingerprint: str) -> changes.RecordedState | None:
    """The holds asset's last validation of `suite`, if its inputs are unchanged and its
    results are still the latest recorded for the suite (so are its holds)."""
    state = changes.recorded(conn, HOLDS_SCOPE, suite.name)
    if state is None or state.fingerprint != fingerprint:
        return None
    latest = conn.execute(
        f"select run_id from {OPS_SCHEMA}.quality_results where suite = ? "
        "order by validated_at desc limit 1", [suite.name],
    ).fetchone()
    return state if latest is not None and latest[0] == state.run_id else None


def check_outcomes(warehouse_path: Path, suite_name: str,
                   run_id: str) -> tuple[list[dict], str | None]:
    """Per rule of the suite, what its asset check reports; and the run that validated it
    when that was an earlier run (None when validated now)."""
    from .runner import validate_suite
    from .suite import load_suite

    suite = load_suite(suite_name)
    with connect(warehouse_path, read_only=True) as conn:
        fingerprint = suite_fingerprint(conn, suite)
        state = reusable_check(conn, suite, fingerprint)
        if state is not None:
            return state.details["expectations"], state.run_id
        result = validate_suite(conn, suite_name, run_id)

    outcomes = [{
        "name": item.name, "rule": item.rule, "severity": item.severity,
        "success": item.success, "rows_checked": item.element_count,
        "failing_rows": item.unexpected_count, "failing_invoice_ids": item.unexpected_ids,
        "failures": [row.as_dict() for row in item.failures[:FAILURES_KEPT]],
        "more_failures": max(0, len(item.failures) - FAILURES_KEPT),
    } for item in result.expectations]
    with connect(warehouse_path) as conn:
        changes.record(conn, CHECK_SCOPE, suite_name, fingerprint, run_id,
                       {"expectations": outcomes})
    return outcomes, None


def validate_or_reuse_holds(conn: duckdb.DuckDBPyConnection, suite_name: str,
                            run_id: str) -> tuple[dict[str, int], str | None]:
    """Validate `suite_name` and record its results and holds, unless the holds recorded
    by an earlier validation of the same inputs stand. Returns the failed rules (rule ->
    failing rows) and the run that validated, when that was an earlier run."""
    from .runner import record_results, validate_suite
    from .suite import load_suite

    suite = load_suite(suite_name)
    fingerprint = suite_fingerprint(conn, suite)
    state = reusable_holds(conn, suite, fingerprint)
    if state is not None:
        return state.details["failed_rules"], state.run_id

    result = validate_suite(conn, suite_name, run_id)
    record_results(conn, result)
    failed = {f"{result.suite}.{item.name}": item.unexpected_count
              for item in result.expectations if not item.success}
    changes.record(conn, HOLDS_SCOPE, suite_name, fingerprint, run_id, {"failed_rules": failed})
    return failed, None
