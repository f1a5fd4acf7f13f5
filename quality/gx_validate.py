"""Run a suite's expectations over a frame with Great Expectations.

Great Expectations takes seconds to import, so it is imported here, inside the function
that needs it, and never at module level: the `q2c` command and anything that only lists
suites or reads holds does not pay for it. Each validation uses a fresh ephemeral context
(it costs milliseconds), so nothing is written to disk and no state leaks between runs.
Usage statistics are switched off before the import, and its start-up chatter is kept out of
run logs unless someone has set a level for the `great_expectations` logger.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from q2c.money import MINOR_UNITS

from .frame import ROW_COLUMN
from .suite import ExpectationSpec, Suite, SuiteDefinitionError

if TYPE_CHECKING:
    import pandas as pd

_SEVERITY = {"error": "critical", "warn": "warning"}


class ValidationRunError(RuntimeError):
    """Great Expectations could not evaluate a check (as opposed to the data failing it)."""


@dataclass(frozen=True)
class CheckOutcome:
    """What Great Expectations said about one expectation."""

    success: bool
    element_count: int
    unexpected_count: int
    unexpected_rows: tuple[int, ...]


def suite_parameters() -> dict[str, object]:
    """Values for `$PARAMETER` arguments in suite files, kept in code rather than copied."""
    return {"iso_4217_codes": sorted(MINOR_UNITS)}


def run_expectations(suite: Suite, frame: pd.DataFrame) -> dict[str, CheckOutcome]:
    """Validate `frame` against every expectation of `suite`, keyed by expectation name.

    Failing rows come back as frame row numbers: the result format asks for the invoice id
    column and the row-number column as unexpected index columns, so every failing row is
    found again even when its id is missing or repeated.

    Raises:
        SuiteDefinitionError: an expectation is not a Great Expectations check or its
            arguments do not fit it.
        ValidationRunError: Great Expectations raised while evaluating a check.
    """
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas(suite.name)
        .add_dataframe_asset(suite.table_name)
        .add_batch_definition_whole_dataframe("frame")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    gx_suite = gx.ExpectationSuite(
        name=suite.name, expectations=[_expectation(suite, spec) for spec in suite.expectations]
    )
    result = batch.validate(
        gx_suite,
        expectation_parameters=suite_parameters(),
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": [suite.invoice_id_column, ROW_COLUMN],
        },
    )
    return {
        _outcome_name(suite, item): _outcome(suite, item, len(frame)) for item in result.results
    }


def _import_gx():
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        # Its INFO records describe its own start-up, not the data; keep run logs about data.
        gx_logger.setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def _expectation(suite: Suite, spec: ExpectationSpec):
    from great_expectations.expectations.registry import get_expectation_impl

    where = f"suite {suite.name} ({suite.path}), expectation {spec.name}"
    try:
        check = get_expectation_impl(spec.check)
    except Exception as exc:
        raise SuiteDefinitionError(
            f"{where}: `{spec.check}` is not a Great Expectations check"
        ) from exc
    try:
        return check(
            **spec.arguments,
            description=spec.rule,
            meta={"q2c_name": spec.name, "hold": spec.hold},
            severity=_SEVERITY[spec.severity],
        )
    except Exception as exc:
        raise SuiteDefinitionError(
            f"{where}: the arguments do not fit `{spec.check}`: {exc}"
        ) from exc


def _outcome_name(suite: Suite, item) -> str:
    meta = item.expectation_config.meta or {}
    if "q2c_name" not in meta:
        raise ValidationRunError(f"suite {suite.name}: a result came back without its rule name")
    return meta["q2c_name"]


def _outcome(suite: Suite, item, rows: int) -> CheckOutcome:
    message = _exception_message(item.exception_info or {})
    if message is not None:
        raise ValidationRunError(
            f"suite {suite.name}, expectation {_outcome_name(suite, item)}: Great Expectations "
            f"could not evaluate the check: {message}"
        )
    details = item.result or {}
    unexpected = details.get("unexpected_index_list") or []
    return CheckOutcome(
        success=bool(item.success),
        element_count=int(details.get("element_count", rows)),
        unexpected_count=int(details.get("unexpected_count", len(unexpected))),
        unexpected_rows=tuple(int(entry[ROW_COLUMN]) for entry in unexpected),
    )


def _exception_message(info: dict) -> str | None:
    """The error Great Expectations caught while evaluating a check, if any.

    It reports an error either at the top level of `exception_info` or, when a metric failed,
    nested under that metric's id; a result in either shape is not a data failure.
    """
    reports = [info, *(value for value in info.values() if isinstance(value, dict))]
    for report in reports:
        if report.get("raised_exception"):
            return str(report.get("exception_message") or "unknown error")
    return None
