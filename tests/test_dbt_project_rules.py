"""Rules every model and test of the dbt project keeps, so it builds on DuckDB and Postgres.

A unit test's name becomes a table name on Postgres, which cuts identifiers at 63 bytes; a
DuckDB-only function in a model builds on the default warehouse and breaks production.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

MODELS = Path(__file__).resolve().parents[1] / "dbt_project" / "models"
DUCKDB_ONLY = re.compile(
    r"\b(regexp_matches|regexp_full_match|strftime|list_\w+|struct_pack|epoch_ms)\s*\(|::"
)


def _yml_files() -> list[Path]:
    return sorted(MODELS.rglob("*.yml"))


def test_every_unit_test_name_fits_a_postgres_identifier():
    too_long = []
    for path in _yml_files():
        for test in (yaml.safe_load(path.read_text()) or {}).get("unit_tests") or []:
            if len(test["name"].encode()) > 63:
                too_long.append(f"{path.relative_to(MODELS)}: {test['name']}")

    assert too_long == []


def test_models_use_no_duckdb_only_sql():
    offending = []
    for path in sorted(MODELS.rglob("*.sql")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("--", 1)[0]
            if DUCKDB_ONLY.search(code):
                offending.append(f"{path.relative_to(MODELS)}:{number}: {line.strip()}")

    assert offending == []
