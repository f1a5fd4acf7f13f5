"""Quality suites as written in `quality/suites/*.yml`, read into plain objects.

A suite file is meant to be read by a finance or data person, not only by code: a title, what
the checked table is, the SQL that turns the table into one row per invoice, and a list of
rules, each with its plain-English wording, the Great Expectations check that enforces it, a
severity and whether a failure holds back the invoice's document. This module only reads and
checks that file; running it is `quality.runner`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

SUITES_DIR = Path(__file__).resolve().parent / "suites"
SEVERITIES = ("error", "warn")


class SuiteDefinitionError(ValueError):
    """A suite file that cannot be used as written."""


@dataclass(frozen=True)
class ExpectationSpec:
    """One rule of a suite: what it means, how it is checked, and what a failure does."""

    name: str
    rule: str
    check: str
    arguments: dict
    severity: str
    hold: bool
    reason: str
    field: str

    @property
    def columns(self) -> tuple[str, ...]:
        """The frame columns the check looks at, in the order the check names them."""
        names = ("column", "column_A", "column_B")
        listed = tuple(self.arguments[name] for name in names if name in self.arguments)
        return listed + tuple(self.arguments.get("column_list", ()))

    def reason_fields(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.reason) if name}


@dataclass(frozen=True)
class Suite:
    """A checked table: the query that builds its frame and the rules the frame must meet."""

    name: str
    title: str
    description: str
    asset: str
    source: str
    invoice_id_column: str
    invoice_number_column: str
    currency_column: str
    query: str
    expectations: tuple[ExpectationSpec, ...] = field(default_factory=tuple)
    path: Path | None = None

    @property
    def table_name(self) -> str:
        """The checked relation without its schema, as the quarantine table records it."""
        return self.asset.rsplit(".", 1)[-1]

    def expectation(self, name: str) -> ExpectationSpec:
        for spec in self.expectations:
            if spec.name == name:
                return spec
        raise KeyError(f"suite {self.name} has no expectation named {name}")


def list_suites(suites_dir: Path = SUITES_DIR) -> list[str]:
    """Names of the suites shipped in `quality/suites/`, one per `.yml` file, sorted."""
    return sorted(path.stem for path in suites_dir.glob("*.yml"))


def load_suite(name: str, suites_dir: Path = SUITES_DIR) -> Suite:
    """Read and check `quality/suites/<name>.yml`.

    Raises:
        SuiteDefinitionError: the file is missing or a required key is absent or invalid;
            the message names the file and the expectation.
    """
    path = suites_dir / f"{name}.yml"
    if not path.is_file():
        known = ", ".join(list_suites(suites_dir)) or "none"
        raise SuiteDefinitionError(f"no quality suite `{name}` at {path} (known: {known})")
    document = yaml.safe_load(path.read_text()) or {}
    suite_keys = (
        "title", "description", "asset", "source", "invoice_id_column",
        "invoice_number_column", "currency_column", "query", "expectations",
    )
    _require(document, suite_keys, f"{path}")
    specs = tuple(
        _expectation(entry, f"{path}, expectation {position}")
        for position, entry in enumerate(document["expectations"], start=1)
    )
    _unique_names(specs, path)
    return Suite(
        name=name,
        title=str(document["title"]).strip(),
        description=str(document["description"]).strip(),
        asset=str(document["asset"]),
        source=str(document["source"]),
        invoice_id_column=str(document["invoice_id_column"]),
        invoice_number_column=str(document["invoice_number_column"]),
        currency_column=str(document["currency_column"]),
        query=str(document["query"]),
        expectations=specs,
        path=path,
    )


def _expectation(entry: dict, where: str) -> ExpectationSpec:
    _require(entry, ("name", "rule", "check", "arguments", "severity", "hold", "reason"), where)
    where = f"{where} ({entry['name']})"
    severity = str(entry["severity"])
    if severity not in SEVERITIES:
        raise SuiteDefinitionError(f"{where}: severity `{severity}` is not one of {SEVERITIES}")
    if not isinstance(entry["hold"], bool):
        raise SuiteDefinitionError(f"{where}: hold must be true or false")
    if not str(entry["check"]).startswith("expect_"):
        raise SuiteDefinitionError(f"{where}: check `{entry['check']}` is not an expectation")
    arguments = dict(entry["arguments"] or {})
    spec = ExpectationSpec(
        name=str(entry["name"]),
        rule=" ".join(str(entry["rule"]).split()),
        check=str(entry["check"]),
        arguments=arguments,
        severity=severity,
        hold=entry["hold"],
        reason=" ".join(str(entry["reason"]).split()),
        field=str(entry.get("field") or ""),
    )
    if not spec.field and not spec.columns:
        raise SuiteDefinitionError(f"{where}: name the `field` the rule is about")
    return spec if spec.field else replace(spec, field=spec.columns[0])


def _require(document: object, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(document, dict):
        raise SuiteDefinitionError(f"{where}: expected a mapping of keys, got {document!r}")
    missing = [key for key in keys if key not in document]
    if missing:
        raise SuiteDefinitionError(f"{where}: missing {', '.join(missing)}")


def _unique_names(specs: tuple[ExpectationSpec, ...], path: Path) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise SuiteDefinitionError(f"{path}: expectation name `{spec.name}` is used twice")
        seen.add(spec.name)
