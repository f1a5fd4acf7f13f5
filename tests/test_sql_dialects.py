"""The models are written in SQL other warehouses read: every compiled model parses as
Snowflake, BigQuery and Postgres SQL, and no model calls a date, cast, string or regular
expression function that only some warehouses have.

The project is compiled once on the DuckDB target with every source enabled, so the models
of HubSpot, NetSuite, Dynamics 365, Sage Intacct and Stripe are compiled too. DuckDB's
compiled SQL is the project's portable form: the dispatched q2c_* macros give their
default (ANSI) implementation there except for regular expressions, whose DuckDB functions
parse everywhere as plain function calls. A model that writes a warehouse-only function
directly is caught by the rule below instead, before any warehouse sees it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot
from sqlglot.errors import ParseError

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
MODELS = DBT_PROJECT / "models"
DBT = Path(sys.executable).parent / "dbt"
DIALECTS = ("snowflake", "bigquery", "postgres")
SOURCES = ("salesforce", "hubspot", "quickbooks", "netsuite", "dynamics365", "sage_intacct",
           "stripe")
DBT_VARS = {"as_of_date": "2026-11-30", "as_of_timestamp": "2026-11-30 12:00:00",
            **{f"q2c_{source}_enabled": True for source in SOURCES}}


@pytest.fixture(scope="module")
def compiled_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Model name -> compiled SQL, from one `dbt compile` on DuckDB with all sources on."""
    folder = tmp_path_factory.mktemp("dialects")
    env = os.environ | {"Q2C_WAREHOUSE": str(folder / "warehouse.duckdb"),
                        "Q2C_HOME": str(folder / "home"),
                        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    result = subprocess.run(
        [str(DBT), "compile", "--project-dir", str(DBT_PROJECT),
         "--profiles-dir", str(DBT_PROJECT), "--target-path", str(folder / "target"),
         "--log-path", str(folder / "logs"), "--vars", json.dumps(DBT_VARS)],
        env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, f"dbt compile failed:\n{result.stdout[-8000:]}"
    manifest = json.loads((folder / "target" / "manifest.json").read_text())
    return {node["name"]: node["compiled_code"] for node in manifest["nodes"].values()
            if node["resource_type"] == "model"}


def test_every_compiled_model_parses_as_snowflake_bigquery_and_postgres(
    compiled_models: dict[str, str],
) -> None:
    failures = []
    for name, sql in sorted(compiled_models.items()):
        for dialect in DIALECTS:
            try:
                sqlglot.parse_one(sql, read=dialect)
            except ParseError as exc:
                failures.append(f"{name} ({dialect}): {str(exc).splitlines()[0]}")

    assert failures == [], "\n".join(failures)
    # Every source's adapters were compiled, not only the two on by default.
    assert {"stg_hubspot__deals", "int_netsuite__erp_invoices", "stg_stripe__charges",
            "fct_invoices", "kpi_dso_monthly"} <= compiled_models.keys()


def test_a_postgres_only_operator_does_not_parse_as_snowflake_or_bigquery() -> None:
    """The parse above can fail: Postgres' regular expression operator is not SQL there."""
    sql = "select invoice_id from invoices where invoice_number ~ '^INV'"

    refused = []
    for dialect in DIALECTS:
        try:
            sqlglot.parse_one(sql, read=dialect)
        except ParseError:
            refused.append(dialect)

    assert refused == ["snowflake", "bigquery"]


# ---------------------------------------------------------------------------------------
# Only cross-database functions in models
# ---------------------------------------------------------------------------------------
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
LINE_COMMENT = re.compile(r"--[^\n]*")
STRING = re.compile(r"'(?:[^']|'')*'")
NOT_CROSS_DATABASE = [
    (re.compile(r"::"), "cast(x as type), with dbt.type_*() for the type"),
    (re.compile(r"\b(date_trunc|dateadd|date_add|date_sub|datediff|date_diff|date_part|datepart"
                r"|last_day|add_months|months_between)\s*\(", re.I),
     "dbt.date_trunc, dbt.dateadd, dbt.datediff, dbt.last_day, q2c_add_days, "
     "q2c_days_between"),
    (re.compile(r"\b(strftime|strptime|to_char|to_date|to_timestamp|make_date|make_timestamp"
                r"|epoch_ms|epoch)\s*\(", re.I),
     "q2c_parse_date, q2c_parse_timestamp, q2c_as_of_date"),
    (re.compile(r"\b(try_cast|safe_cast)\s*\(", re.I), "dbt.safe_cast or q2c_amount/q2c_int"),
    (re.compile(r"\b(regexp_\w+|rlike|similar\s+to)\b|~\*?\s*'", re.I),
     "q2c_regex_matches, q2c_regex_full_match, q2c_regex_extract, q2c_regex_replace"),
    (re.compile(r"\b(split_part|string_agg|listagg|group_concat|string_split|str_split"
                r"|array_to_string|array_join)\s*\(", re.I),
     "dbt.split_part, q2c_sorted_list"),
    (re.compile(r"\b(generate_series|unnest|explode|sequence)\s*\(", re.I), "q2c_month_spine"),
    (re.compile(r"\binterval\s*'", re.I), "dbt.dateadd, q2c_add_days"),
    (re.compile(r"\bilike\b", re.I), "lower(x) like"),
    (re.compile(r"\bas\s+(text|varchar|string|double|float|real|tinyint|hugeint|blob)\b",
                re.I), "dbt.type_string(), dbt.type_float() or a decimal"),
    (re.compile(r'"[^"\s]+"'), "adapter.quote('name') (Spark reads \"name\" as a string)"),
]


def non_cross_database_calls(sql: str) -> list[tuple[int, str]]:
    """(line number, what to use instead) for each warehouse-only construct in a model's
    SQL, read outside Jinja (macros may speak a warehouse's dialect), comments and texts."""
    without_jinja = JINJA.sub(lambda match: "\n" * match.group(0).count("\n"), sql)
    found = []
    for number, line in enumerate(without_jinja.splitlines(), start=1):
        code = STRING.sub("''", LINE_COMMENT.sub("", line))
        found.extend((number, hint) for pattern, hint in NOT_CROSS_DATABASE
                     if pattern.search(code))
    return found


def test_models_call_only_cross_database_date_cast_and_string_functions() -> None:
    offending = []
    for path in sorted(MODELS.rglob("*.sql")):
        lines = path.read_text().splitlines()
        for number, hint in non_cross_database_calls(path.read_text()):
            offending.append(f"{path.relative_to(MODELS)}:{number}: "
                             f"{lines[number - 1].strip()}  -> use {hint}")

    assert offending == [], "\n".join(offending)


def test_the_rule_finds_warehouse_only_sql_and_leaves_macros_and_texts_alone() -> None:
    sql = "\n".join([
        "select",
        "    strftime(issued_at, '%Y-%m') as month,",            # 2: DuckDB date format
        "    amount::decimal(20, 4) as amount,",                  # 3: cast shorthand
        "    regexp_replace(name, '[^a-z]', '', 'g') as slug,",   # 4: regex function
        '    "index" as line_index,',                              # 5: double quotes
        "    cast(note as text) as note,",                        # 6: Postgres type
        "    {{ dbt.date_trunc('month', 'issued_at') }} as m,",   # macro: fine
        "    'regexp_replace(x) :: \"q\"' as label,",             # a text: fine
        "    -- date_trunc('month', x) in a comment: fine",
        "    {{ q2c_regex_replace('name', '[^a-z]', '') }} as s",  # macro: fine
        "from invoices",
    ])

    assert [number for number, _ in non_cross_database_calls(sql)] == [2, 3, 4, 5, 6]
