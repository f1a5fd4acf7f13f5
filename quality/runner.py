"""Run quality suites against the warehouse and record what they found.

`validate_suite` builds a suite's frame from the warehouse, checks it with Great
Expectations and returns, per rule, which invoices failed and why. `record_results` writes
that to `q2c_ops`: one `quality_results` row per rule, the current holds of the suite in
`invoice_holds` (an invoice with a hold gets no document), and each failing row of a hold
rule in `quarantine` for review. `held_invoice_ids` is what the document step asks.

Both suites key invoices by the ERP's invoice id as text (`raw_quickbooks.invoice.id` and
`core.fct_invoices.invoice_id` carry the same value), so holds from the raw suite and the
model suite add up on the same invoice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from q2c.warehouse import OPS_SCHEMA, ensure_ops_tables

from .frame import plain_row, query_frame
from .gx_validate import CheckOutcome, run_expectations
from .reasons import render_reason
from .suite import ExpectationSpec, Suite, SuiteDefinitionError, list_suites, load_suite

__all__ = [
    "ExpectationResult",
    "FailingRow",
    "SuiteResult",
    "held_invoice_ids",
    "list_suites",
    "load_suite",
    "record_results",
    "validate_suite",
]

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

logger = logging.getLogger(__name__)

METADATA_ROW_LIMIT = 50
QUARANTINE_STAGE = "quality"
_SOURCE_FILE_COLUMN = "_q2c_source_file"
_SOURCE_ROW_COLUMN = "_q2c_source_row"


@dataclass(frozen=True)
class FailingRow:
    """One row that broke a rule: which invoice, which value, and the sentence saying why."""

    invoice_id: str | None
    invoice_number: str | None
    field: str
    value: object
    reason: str
    record: dict[str, object] = field(repr=False)

    def as_dict(self) -> dict[str, object]:
        """The row as plain values for reports; the full record (it may hold PII) is left out."""
        return {
            "invoice_id": self.invoice_id,
            "invoice_number": self.invoice_number,
            "field": self.field,
            "value": self.value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one rule of a suite."""

    name: str
    rule: str
    check: str
    field: str
    asset: str
    severity: str
    hold: bool
    success: bool
    element_count: int
    unexpected_count: int
    failures: tuple[FailingRow, ...] = field(repr=False)

    @property
    def unexpected_ids(self) -> list[str | None]:
        """Every failing invoice id, in frame order (None where the id itself is missing)."""
        return [row.invoice_id for row in self.failures]

    @property
    def failing_rows(self) -> list[dict[str, object]]:
        """The first failing rows as plain dicts, capped so they fit in run metadata."""
        return [row.as_dict() for row in self.failures[:METADATA_ROW_LIMIT]]

    @property
    def holds(self) -> bool:
        """True when this rule failed and its failures hold back documents."""
        return self.hold and not self.success

    def as_metadata(self) -> dict[str, object]:
        """Plain, JSON-ready values for a run report or an asset check's metadata."""
        return {
            "rule": self.rule,
            "asset": self.asset,
            "field": self.field,
            "severity": self.severity,
            "hold": self.hold,
            "success": self.success,
            "element_count": self.element_count,
            "unexpected_count": self.unexpected_count,
            "unexpected_ids": self.unexpected_ids,
            "failing_rows": self.failing_rows,
        }


@dataclass(frozen=True)
class SuiteResult:
    """The outcome of one suite run: one `ExpectationResult` per rule, in suite order."""

    suite: str
    title: str
    asset: str
    source: str
    table_name: str
    run_id: str
    validated_at: dt.datetime
    element_count: int
    expectations: tuple[ExpectationResult, ...]

    @property
    def success(self) -> bool:
        """True when no error-severity rule failed (warnings do not fail a run)."""
        return all(item.success for item in self.expectations if item.severity == "error")

    def failed(self, severity: str | None = None) -> list[ExpectationResult]:
        return [
            item for item in self.expectations
            if not item.success and (severity is None or item.severity == severity)
        ]

    def held_invoices(self) -> dict[str, list[str]]:
        """Invoice id -> the reasons this run holds it back, each reason once."""
        held: dict[str, list[str]] = {}
        for item in self.expectations:
            if not item.holds:
                continue
            for row in item.failures:
                if row.invoice_id is not None and row.reason not in held.get(row.invoice_id, []):
                    held.setdefault(row.invoice_id, []).append(row.reason)
        return held


def validate_suite(
    conn: duckdb.DuckDBPyConnection, suite_name: str, run_id: str
) -> SuiteResult:
    """Build the suite's frame from the warehouse and check every rule of the suite.

    Args:
        conn: an open warehouse connection (read-only is enough).
        suite_name: a file name under `quality/suites/`, without `.yml`.
        run_id: the run this validation belongs to; recorded with the results.

    Raises:
        SuiteDefinitionError: the suite file, or a column it names, does not fit the frame.
        ValidationRunError: Great Expectations could not evaluate a check.
    """
    suite = load_suite(suite_name)
    validated_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    frame = query_frame(conn, suite.query)
    _check_columns(suite, frame)
    outcomes = run_expectations(suite, frame)
    results = tuple(
        _expectation_result(suite, spec, outcomes[spec.name], frame)
        for spec in suite.expectations
    )
    result = SuiteResult(
        suite=suite.name,
        title=suite.title,
        asset=suite.asset,
        source=suite.source,
        table_name=suite.table_name,
        run_id=run_id,
        validated_at=validated_at,
        element_count=len(frame),
        expectations=results,
    )
    logger.info(
        "quality suite %s on %s: %d rows, %d of %d rules failed (%d error), %d invoices held",
        suite.name, suite.asset, len(frame), len(result.failed()), len(results),
        len(result.failed("error")), len(result.held_invoices()),
    )
    return result


def record_results(conn: duckdb.DuckDBPyConnection, result: SuiteResult) -> None:
    """Write a suite run to `q2c_ops` in one transaction.

    Holds of the suite are replaced, not added to: an invoice fixed at the source is released
    by the next run. Results and quarantine rows are kept per run, as a history.
    """
    ensure_ops_tables(conn)
    holds = _hold_rows(result)
    quarantined = _quarantine_rows(result)
    conn.execute("begin transaction")
    try:
        conn.executemany(
            f"insert into {OPS_SCHEMA}.quality_results (run_id, suite, asset, expectation, "
            "column_name, severity, success, element_count, unexpected_count, unexpected_ids, "
            "validated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_result_row(result, item) for item in result.expectations],
        )
        conn.execute(f"delete from {OPS_SCHEMA}.invoice_holds where suite = ?", [result.suite])
        if holds:
            conn.executemany(
                f"insert into {OPS_SCHEMA}.invoice_holds (run_id, invoice_id, invoice_number, "
                "suite, expectation, reason, held_at) values (?, ?, ?, ?, ?, ?, ?)",
                holds,
            )
        if quarantined:
            conn.executemany(
                f"insert into {OPS_SCHEMA}.quarantine (run_id, stage, source, table_name, file, "
                "row_number, record_id, field, reason, raw_record, detected_at) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                quarantined,
            )
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    logger.info(
        "recorded quality suite %s run %s: %d rules, %d holds, %d rows quarantined",
        result.suite, result.run_id, len(result.expectations), len(holds), len(quarantined),
    )


def held_invoice_ids(conn: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Invoice id -> reasons it is held, from the latest recorded run of each suite."""
    exists = conn.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = ? and table_name in ('invoice_holds', 'quality_results')",
        [OPS_SCHEMA],
    ).fetchone()[0]
    if exists < 2:
        return {}
    rows = conn.execute(
        f"""
        with latest_runs as (
            select suite, run_id
            from {OPS_SCHEMA}.quality_results
            qualify row_number() over (partition by suite order by validated_at desc) = 1
        )
        select holds.invoice_id, holds.reason
        from {OPS_SCHEMA}.invoice_holds as holds
        inner join latest_runs
            on latest_runs.suite = holds.suite and latest_runs.run_id = holds.run_id
        order by holds.invoice_id, holds.suite, holds.expectation
        """
    ).fetchall()
    held: dict[str, list[str]] = {}
    for invoice_id, reason in rows:
        if reason not in held.get(invoice_id, []):
            held.setdefault(invoice_id, []).append(reason)
    return held


def _check_columns(suite: Suite, frame: pd.DataFrame) -> None:
    """Fail early, naming the rule, when a suite refers to a column its query does not make."""
    available = set(frame.columns)
    needed = {suite.invoice_id_column, suite.invoice_number_column, suite.currency_column}
    missing = sorted(needed - available)
    if missing:
        raise SuiteDefinitionError(f"suite {suite.name}: the query has no column {missing}")
    for spec in suite.expectations:
        missing = sorted((set(spec.columns) | spec.reason_fields()) - available)
        if missing:
            raise SuiteDefinitionError(
                f"suite {suite.name} ({suite.path}), expectation {spec.name}: "
                f"the query has no column {', '.join(missing)}"
            )


def _expectation_result(
    suite: Suite, spec: ExpectationSpec, outcome: CheckOutcome, frame: pd.DataFrame
) -> ExpectationResult:
    return ExpectationResult(
        name=spec.name,
        rule=spec.rule,
        check=spec.check,
        field=spec.field,
        asset=suite.asset,
        severity=spec.severity,
        hold=spec.hold,
        success=outcome.success,
        element_count=outcome.element_count,
        unexpected_count=outcome.unexpected_count,
        failures=tuple(
            _failing_row(suite, spec, frame, position) for position in outcome.unexpected_rows
        ),
    )


def _failing_row(
    suite: Suite, spec: ExpectationSpec, frame: pd.DataFrame, position: int
) -> FailingRow:
    row = frame.iloc[position].to_dict()
    record = plain_row(frame, position)
    columns = spec.columns
    value = record[columns[0]] if len(columns) == 1 else {name: record[name] for name in columns}
    invoice_id = record[suite.invoice_id_column]
    invoice_number = record[suite.invoice_number_column]
    return FailingRow(
        invoice_id=None if invoice_id is None else str(invoice_id),
        invoice_number=None if invoice_number is None else str(invoice_number),
        field=spec.field,
        value=value,
        reason=render_reason(spec.reason, row, suite.currency_column),
        record=record,
    )


def _result_row(result: SuiteResult, item: ExpectationResult) -> tuple:
    return (
        result.run_id, result.suite, result.asset, item.name, item.field, item.severity,
        item.success, item.element_count, item.unexpected_count,
        json.dumps(item.unexpected_ids), result.validated_at,
    )


def _hold_rows(result: SuiteResult) -> list[tuple]:
    """One row per held invoice and reason; a row without an invoice id cannot be held."""
    rows: dict[tuple[str, str, str], tuple] = {}
    for item in result.expectations:
        if not item.holds:
            continue
        for failure in item.failures:
            key = (failure.invoice_id, item.name, failure.reason)
            if failure.invoice_id is None or key in rows:
                continue
            rows[key] = (
                result.run_id, failure.invoice_id, failure.invoice_number, result.suite,
                item.name, failure.reason, result.validated_at,
            )
    return list(rows.values())


def _quarantine_rows(result: SuiteResult) -> list[tuple]:
    rows = []
    for item in result.expectations:
        if not item.holds:
            continue
        for failure in item.failures:
            source_row = failure.record.get(_SOURCE_ROW_COLUMN)
            rows.append((
                result.run_id, QUARANTINE_STAGE, result.source, result.table_name,
                failure.record.get(_SOURCE_FILE_COLUMN),
                None if source_row is None else int(source_row),
                failure.invoice_id, failure.field, failure.reason,
                json.dumps(failure.record, default=str), result.validated_at,
            ))
    return rows
