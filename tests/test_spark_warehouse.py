"""The same dbt project on Apache Spark: its marts equal DuckDB's, row for row.

One module-scoped run: generated demo data is ingested into DuckDB and every seed and model
is built there, `q2c warehouse load-spark` copies the raw layer into a local Spark (pyspark,
dbt-spark's session method, Hive metastore in a temporary folder), and the whole project is
built again with `--target spark` in this process, on the one Spark session the module
starts (about two minutes on 2 cores; dbt's data tests run on DuckDB elsewhere and are left
out here). The core, KPI and delivery marts and the reporting views are compared; they are
read from DuckDB's manifest, so a new mart is compared as soon as it exists.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from q2c.cli import main as cli_main
from q2c.delivery.export import WAREHOUSE_DDL as DELIVERY_WAREHOUSE_DDL
from q2c.demo import generate
from q2c.review import ensure_review_warehouse_tables
from q2c.sources.landing import load_source
from q2c.sources.schema import DEFAULT_SOURCES
from q2c.warehouse import connect
from q2c.warehouse_spark import SparkWarehouseError, session_config, spark_session

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
AS_OF = dt.date(2026, 11, 30)
DBT_VARS = json.dumps({"as_of_date": AS_OF.isoformat(),
                       "as_of_timestamp": f"{AS_OF.isoformat()} 12:00:00"})
COMPARED_FOLDERS = ("models/marts/core/", "models/marts/kpi/", "models/marts/delivery/",
                    "models/reporting/")
SELECTION = ["--resource-type", "model", "--resource-type", "seed"]


def _record_review_queue(conn: duckdb.DuckDBPyConnection) -> None:
    """Three documents for the review marts (time differences in seconds, hour ratios):
    pending 30 hours, approved after 5 hours and rejected after 30, each with a 24 h SLA."""
    invoices = conn.execute(
        "select id, doc_number, upper(currency_id), total_amount, "
        "cast(left(transaction_date, 10) as date) from raw_quickbooks.invoice "
        "order by id limit 3").fetchall()
    as_of = dt.datetime.combine(AS_OF, dt.time(12))
    for (invoice_id, number, currency, total, issued), (status, hours_ago, decided_after) in zip(
        invoices, [("pending", 30, None), ("approved", 50, 5), ("rejected", 80, 30)],
        strict=True,
    ):
        queued = as_of - dt.timedelta(hours=hours_ago)
        decided = queued + dt.timedelta(hours=decided_after) if decided_after else None
        conn.execute(
            "insert into q2c_ops.review_queue (invoice_id, invoice_number, document_kind, "
            "currency, total_amount, issue_date, reasons, rule_ids, status, queued_at, "
            "sla_hours, sla_due_at, decided_by, decided_at, policy_version, policy_hash, "
            "exported_at) values (?, ?, 'invoice', ?, ?, ?, 'high_value', 'high_value', ?, ?, "
            "24, ?, ?, ?, '3', ?, ?)",
            [invoice_id, number, currency, Decimal(total), issued, status, queued,
             queued + dt.timedelta(hours=24), "ar.lead" if decided else None, decided,
             "f" * 64, as_of],
        )


def _build_raw_layer(folder: Path) -> Path:
    landing, path = folder / "landing", folder / "warehouse.duckdb"
    generate(landing, seed=7, accounts=30, as_of=AS_OF)
    with connect(path) as conn:
        for source in DEFAULT_SOURCES:
            load_source(conn, landing, source, "test-run")
        conn.execute(DELIVERY_WAREHOUSE_DDL)
        ensure_review_warehouse_tables(conn)
        _record_review_queue(conn)
    return path


def _dbt_args(command: list[str], folder: Path) -> list[str]:
    return [*command, "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
            "--target-path", str(folder / "target"), "--log-path", str(folder / "logs"),
            "--vars", DBT_VARS]


def _dbt_duckdb(command: list[str], folder: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([str(DBT), *_dbt_args(command, folder)], env=dict(os.environ),
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        f"dbt {command[0]} on DuckDB failed:\n{result.stdout[-8000:]}{result.stderr[-2000:]}")
    return result


def _dbt_spark(command: list[str], folder: Path):
    """dbt in this process, so dbt-spark's session method finds the module's Spark session
    (a second process could not open the same Derby metastore)."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(_dbt_args([*command, "--target", "spark"], folder))
    assert result.success, f"dbt {command[0]} on Spark failed: {result.exception}; " \
                           f"see {folder / 'logs' / 'dbt.log'}"
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Both warehouses built from one raw layer; the Spark session stays open for reading."""
    folder = tmp_path_factory.mktemp("spark_warehouse")
    warehouse = _build_raw_layer(folder)
    env = {"Q2C_WAREHOUSE": str(warehouse), "Q2C_HOME": str(folder / "home"),
           "Q2C_SPARK_HOME": str(folder / "spark"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        _dbt_duckdb(["build", *SELECTION], folder / "duckdb")
        spark = spark_session(folder / "spark")
        try:
            load_exit_code = cli_main(["warehouse", "load-spark"])
            _dbt_spark(["build", *SELECTION], folder / "spark-dbt")
            manifest = json.loads((folder / "duckdb" / "target" / "manifest.json").read_text())
            yield {"folder": folder, "warehouse": warehouse, "spark": spark,
                   "load_exit_code": load_exit_code, "manifest": manifest}
        finally:
            spark.stop()


# ---------------------------------------------------------------------------------------
# Comparing rows across engines
# ---------------------------------------------------------------------------------------
def _comparable(value: object) -> tuple:
    """A value with its kind, equal across engines when the value is: a decimal by value,
    whatever its scale (Spark widens a sum's precision differently)."""
    if isinstance(value, Decimal):
        return ("decimal", value.normalize() if value.is_finite() else value)
    return (type(value).__name__, value)


def _spark_value(value: object) -> object:
    """pyspark hands a timestamp back in this machine's local time; the session's is UTC."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _rows(rows: list) -> Counter:
    return Counter(tuple(_comparable(value) for value in row) for row in rows)


def _difference(relation: str, duck: duckdb.DuckDBPyConnection, spark) -> str | None:
    """Order-independent: the same rows, each as often, on both engines."""
    duck_result = duck.execute(f"select * from {relation}")
    duck_columns = [column[0] for column in duck_result.description]
    duck_rows = _rows(duck_result.fetchall())
    frame = spark.sql(f"select * from {relation}")
    spark_rows = _rows([tuple(_spark_value(v) for v in row) for row in frame.collect()])
    if duck_columns != frame.columns:
        return f"columns differ: DuckDB {duck_columns}, Spark {frame.columns}"
    if duck_rows == spark_rows:
        return None
    only_duck, only_spark = list(duck_rows - spark_rows), list(spark_rows - duck_rows)
    first = [dict(zip(duck_columns, rows[0], strict=True)) if rows else None
             for rows in (only_duck, only_spark)]
    return (f"{duck_rows.total()} rows on DuckDB, {spark_rows.total()} on Spark; "
            f"first on DuckDB only: {first[0]}; first on Spark only: {first[1]}")


def _models(manifest: dict, folders: tuple[str, ...]) -> list[dict]:
    return sorted(
        (node for node in manifest["nodes"].values()
         if node["resource_type"] == "model" and node["original_file_path"].startswith(folders)),
        key=lambda node: node["original_file_path"],
    )


# ---------------------------------------------------------------------------------------
# Identical marts
# ---------------------------------------------------------------------------------------
def test_every_mart_and_reporting_view_is_identical_on_duckdb_and_spark(built: dict) -> None:
    models = _models(built["manifest"], COMPARED_FOLDERS)
    differences, row_counts = [], {}
    with duckdb.connect(str(built["warehouse"]), read_only=True) as duck:
        for node in models:
            relation = f'{node["schema"]}.{node["alias"]}'
            row_counts[relation] = duck.execute(f"select count(*) from {relation}").fetchone()[0]
            difference = _difference(relation, duck, built["spark"])
            if difference:
                differences.append(f"{node['name']} ({relation}): {difference}")

    assert differences == [], "\n".join(differences)
    for relation in ("core.dim_accounts", "core.fct_invoices", "core.fct_payments",
                     "kpi.kpi_ar_aging", "kpi.kpi_ar_aging_history", "kpi.kpi_dso_monthly",
                     "delivery.mart_review_queue", "delivery.kpi_approval_sla",
                     "reporting.fct_invoices", "reporting.kpi_dso_monthly"):
        assert row_counts.get(relation, 0) > 0, f"{relation} is empty or was not compared"
    # The one document still pending was queued 30 hours before 12:00 on the as-of day
    # with a 24-hour SLA: 30.00 hours old, 24 - 30 = -6.00 hours left.
    waiting = built["spark"].sql(
        "select age_hours, hours_to_sla, is_sla_breached from delivery.mart_review_queue")
    assert [tuple(row) for row in waiting.collect()] == [
        (Decimal("30.00"), Decimal("-6.00"), True)]


def test_load_spark_copies_every_raw_table_with_its_types(built: dict) -> None:
    """Raw values stay text, q2c's own decimals stay decimal(20,4), times stay timestamps."""
    spark = built["spark"]
    with duckdb.connect(str(built["warehouse"]), read_only=True) as duck:
        duck_tables = duck.execute(
            "select table_schema, table_name from information_schema.tables "
            "where starts_with(table_schema, 'raw_') order by 1, 2").fetchall()
        duck_invoices = duck.execute(
            "select count(*), count(distinct id) from raw_quickbooks.invoice").fetchone()
    invoice_types, review_types = (
        {field.name: field.dataType.simpleString() for field in spark.table(name).schema}
        for name in ("raw_quickbooks.invoice", "q2c_ops.review_queue")
    )

    assert built["load_exit_code"] == 0
    assert len(duck_tables) > 10
    for schema, name in duck_tables:
        assert spark.catalog.tableExists(f"{schema}.{name}"), f"{schema}.{name} not in Spark"
    assert tuple(spark.sql("select count(*), count(distinct id) from raw_quickbooks.invoice"
                           ).first()) == duck_invoices
    assert invoice_types["total_amount"] == "string"
    assert invoice_types["_q2c_loaded_at"] == "timestamp"
    assert review_types["total_amount"] == "decimal(20,4)"
    assert review_types["queued_at"] == "timestamp"


def test_the_session_is_dbts_spark_target_and_keeps_its_metastore(
    built: dict, tmp_path: Path
) -> None:
    """The loader and dbt read one profile; a second folder in the same process is refused
    rather than loaded into the first one's metastore."""
    home = built["folder"] / "spark"
    config = session_config(home)
    conf = built["spark"].conf

    assert config["spark.master"] == "local[2]" and conf.get("spark.master") == "local[2]"
    assert config["spark.sql.warehouse.dir"] == f"{home}/warehouse"
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert conf.get("spark.sql.shuffle.partitions") == "2"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    with pytest.raises(SparkWarehouseError, match="already runs Spark on"):
        spark_session(tmp_path / "other")


# ---------------------------------------------------------------------------------------
# The dispatched macros on values the demo data does not hold
# ---------------------------------------------------------------------------------------
EDGE_VALUES = [
    "12", " 12 ", "12.5", "-0.00005", "1e3", ".5", "1,234.50", "39,00", "", "abc",
    "12345678901234567", "1e400", "2147483648", "30.0", "+7", "0x10",
    "2021-01-18 6:16:26", "2018-12-18 18:20:30.829", "2021-01-19", "2021-1-5",
    "2021-01-19T10:00:00Z", "2021-01-19T10:00:00+01:00", "2021-01-19 10:00:00-0530",
    "2021-01-19 10:00:00+01", "2023-04-26 23:59:59.000000 UTC",
    "2021-01-19T10:00:00.123456789Z", "2021-02-30", "2020-02-29", "2021-01-19 24:00:00",
    "2021/01/19", "2021-01-19xyz", "2026-01-11T00:30:00+01:00", "true", "FALSE", "y",
    "maybe", "de", "Germany", "Müller Widgets GmbH & Co. KG", "O’Reilly Media, Inc.",
    "ÄÖÜ Trading Ltd", "https://www.Acme.de/about?x=1", "billing@ACME.de", "DE 111.111.111",
    "__Mid  Market__", "de\n",
]


def _edge_case_sql() -> str:
    rows = ", ".join(f"({i}, '{value}')" for i, value in enumerate(EDGE_VALUES))
    return (
        "select i, {{ q2c_amount('s') }} as amount, "
        "{{ q2c_decimal('s', 9, 4) }} as percent, {{ q2c_int('s') }} as whole, "
        "{{ q2c_parse_timestamp('s') }} as ts, {{ q2c_parse_date('s') }} as day, "
        "{{ q2c_parse_bool('s') }} as flag, {{ q2c_normalize_name('s') }} as name, "
        "{{ q2c_web_domain('s') }} as web, {{ q2c_email_domain('s') }} as mail, "
        "{{ q2c_normalize_tax_id('s') }} as tax, {{ q2c_surrogate_key(['s', 'i']) }} as skey, "
        "{{ q2c_regex_full_match('s', '[a-z]{2}') }} as two_letters, "
        "{{ q2c_trim_chars(q2c_regex_replace('lower(s)', '[^a-z]+', '_'), '_') }} as slug, "
        "{{ q2c_days_between('cast(' ~ q2c_parse_date('s') ~ ' as date)', q2c_as_of_date()) }}"
        f" as days from (values {rows}) as v (i, s) order by i"
    )


def test_macros_parse_edge_cases_alike_on_duckdb_and_spark(built: dict) -> None:
    inline = ["compile", "--quiet", "--inline", _edge_case_sql()]
    duck_sql = _dbt_duckdb(inline, built["folder"] / "duckdb").stdout  # parsed there before
    spark_result = _dbt_spark(inline, built["folder"] / "spark-dbt")
    spark_sql = spark_result.result.results[0].node.compiled_code
    duck_rows = duckdb.connect().execute(duck_sql).fetchall()
    spark_rows = [tuple(_spark_value(v) for v in row)
                  for row in built["spark"].sql(spark_sql).collect()]

    differing = [f"{EDGE_VALUES[d[0]]!r}: DuckDB {d} Spark {s}"
                 for d, s in zip(duck_rows, spark_rows, strict=True)
                 if [_comparable(v) for v in d] != [_comparable(v) for v in s]]
    assert differing == [], "\n".join(differing)
    by_value = {EDGE_VALUES[row[0]]: row for row in spark_rows}
    # Half away from zero at the 4th decimal; 1e3 is a plain decimal; commas are ambiguous.
    assert by_value["-0.00005"][1] == Decimal("-0.0001")
    assert by_value["1e3"][1] == Decimal("1000.0000") and by_value["1,234.50"][1] is None
    assert by_value["12345678901234567"][1] is None  # 17 digits do not fit decimal(20,4)
    assert by_value["30.0"][3] == 30 and by_value["+7"][3] == 7 and by_value["12.5"][3] is None
    assert by_value["2147483648"][3] is None  # one past the integer range
    # 10:00 at UTC-05:30 is 15:30 UTC; nanoseconds are cut to microseconds.
    assert by_value["2021-01-19 10:00:00-0530"][4] == dt.datetime(2021, 1, 19, 15, 30)
    assert by_value["2021-01-19T10:00:00.123456789Z"][4] == dt.datetime(
        2021, 1, 19, 10, 0, 0, 123456)
    assert by_value["2021-02-30"][4] is None and by_value["2021-01-19 24:00:00"][4] is None
    assert by_value["2026-01-11T00:30:00+01:00"][5] == dt.date(2026, 1, 11)
    assert by_value["O’Reilly Media, Inc."][7] == "o’reilly media"
    assert by_value["https://www.Acme.de/about?x=1"][8] == "acme.de"
    assert by_value["billing@ACME.de"][9] == "acme.de"
    assert by_value["DE 111.111.111"][10] == "DE111111111"
    assert by_value["de"][12] is True
    assert by_value["de\n"][12] is False  # a line break before the end is not the end
    assert by_value["__Mid  Market__"][13] == "mid_market"
    # 2020-02-29 to 2026-02-28: 6 * 365 + 1 (2024-02-29) = 2191 days; to 2026-11-30: + 275.
    assert by_value["2020-02-29"][14] == 2466
