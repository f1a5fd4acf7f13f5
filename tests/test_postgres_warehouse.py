"""The same dbt project on DuckDB and on a real Postgres: identical marts, a reporting schema
for BI tools, a read-only BI role, and dbt docs.

One module-scoped run: generated demo data is ingested into DuckDB (plus a few delivery and
review records, so those marts are not empty), `dbt build` runs on DuckDB, `q2c warehouse
push-postgres` copies the raw layer to a Postgres started here, and `dbt build --target
postgres` runs there. The models compared are read from the manifest, so a new mart is
compared as soon as it exists.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg2
import pytest
from postgres_server import PostgresServer, running_postgres
from psycopg2 import errors as pg_errors

from q2c.cli import main as cli_main
from q2c.delivery.export import WAREHOUSE_DDL as DELIVERY_WAREHOUSE_DDL
from q2c.demo import generate
from q2c.review import ensure_review_warehouse_tables
from q2c.sources.landing import load_source
from q2c.sources.schema import DEFAULT_SOURCES
from q2c.warehouse import connect
from q2c.warehouse_postgres import (
    PostgresWarehouseError,
    push_to_postgres,
    scram_sha256_verifier,
)

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
AS_OF = dt.date(2026, 11, 30)
AS_OF_TIMESTAMP = dt.datetime(2026, 11, 30, 12, 0, 0)
DBT_VARS = json.dumps({"as_of_date": AS_OF.isoformat(),
                       "as_of_timestamp": AS_OF_TIMESTAMP.isoformat(sep=" ")})
COMPARED_FOLDERS = ("models/marts/core/", "models/marts/kpi/", "models/marts/delivery/",
                    "models/reporting/")
DATABASE = "q2c_warehouse"
BI_ROLE = "q2c_bi"
BI_PASSWORD = "bi-reads-only"


# ---------------------------------------------------------------------------------------
# The raw layer: generated CRM and ERP data, and a handful of q2c's own delivery records
# ---------------------------------------------------------------------------------------
def _insert(conn: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> None:
    for row in rows:
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        conn.execute(f"insert into q2c_ops.{table} ({names}) values ({marks})", list(row.values()))


def _at(days_before: int, hour: int) -> dt.datetime:
    return dt.datetime.combine(AS_OF - dt.timedelta(days=days_before), dt.time(hour))


def _record_review_queue(conn: duckdb.DuckDBPyConnection, invoices: list[tuple]) -> None:
    """Five documents: pending past and within the SLA, approved in time and late, rejected."""
    states = [  # (status, queued days before as-of, hour, hours to decision or None)
        ("pending", 3, 9, None), ("approved", 10, 9, 5), ("approved", 40, 9, 30),
        ("rejected", 12, 8, 2), ("pending", 0, 10, None),
    ]
    rows = []
    for (invoice_id, number, currency, total, issued), (status, days, hour, hours) in zip(
        invoices, states, strict=True
    ):
        queued = _at(days, hour)
        rows.append({
            "invoice_id": invoice_id, "invoice_number": number, "document_kind": "invoice",
            "currency": currency, "total_amount": Decimal(total), "issue_date": issued,
            "reasons": "high_value: total above the limit", "rule_ids": "high_value",
            "status": status, "queued_at": queued, "sla_hours": 24,
            "sla_due_at": queued + dt.timedelta(hours=24),
            "decided_by": "ar.lead" if hours else None,
            "decided_at": queued + dt.timedelta(hours=hours) if hours else None,
            "policy_version": "3", "policy_hash": "f" * 64, "exported_at": AS_OF_TIMESTAMP,
        })
    _insert(conn, "review_queue", rows)


def _record_deliveries(conn: duckdb.DuckDBPyConnection, invoices: list[tuple]) -> None:
    """Sent by email; failed over from email to the portal; a dead letter on EDI."""
    plans = [("sent", ["email"], ["sent"]),
             ("sent", ["email", "portal"], ["failed_over", "sent"]),
             ("dead_letter", ["edi"], ["dead_letter"])]
    outbox, payloads, events = [], [], []
    for number, ((invoice_id, invoice_number, *_), (status, channels, outcomes)) in enumerate(
        zip(invoices, plans, strict=True), start=1
    ):
        key, queued = f"doc-{number}", _at(2 + number, 1)
        outbox.append({
            "document_key": key, "kind": "invoice", "invoice_id": invoice_id,
            "invoice_number": invoice_number, "document_id": f"pdf-{number}",
            "plan": " -> ".join(channels), "channel_index": len(channels) - 1,
            "status": status, "attempts": len(channels), "channel_attempts": 1,
            "last_error": "partner refused the interchange" if status == "dead_letter" else None,
            "queued_at": queued, "updated_at": queued + dt.timedelta(hours=3), "run_id": "r1",
        })
        events.append({"document_key": key, "event": "queued", "occurred_at": queued})
        for position, (channel, outcome) in enumerate(zip(channels, outcomes, strict=True)):
            attempt = f"{key}-{channel}"
            payloads.append({"attempt_key": attempt, "document_key": key, "position": position,
                             "channel": channel, "recipient": "***@example.com"})
            for step, event in enumerate(("claimed", outcome), start=1):
                events.append({
                    "document_key": key, "attempt_key": attempt, "channel": channel,
                    "event": event, "occurred_at": queued + dt.timedelta(hours=position + step),
                    "location": "smtp://127.0.0.1:25" if event == "sent" else None,
                    "reference": f"<{attempt}@q2c>" if event == "sent" else None,
                })
    for seq, event in enumerate(events, start=1):
        event |= {"seq": seq, "event_id": f"e{seq}", "run_id": "r1", "hash": f"h{seq}",
                  "prev_hash": f"h{seq - 1}"}
    _insert(conn, "outbox", outbox)
    _insert(conn, "outbox_payloads", payloads)
    _insert(conn, "delivery_events", events)


def _build_raw_layer(folder: Path) -> Path:
    landing, path = folder / "landing", folder / "warehouse.duckdb"
    generate(landing, seed=7, accounts=30, as_of=AS_OF)
    with connect(path) as conn:
        for source in DEFAULT_SOURCES:
            load_source(conn, landing, source, "test-run")
        conn.execute(DELIVERY_WAREHOUSE_DDL)
        ensure_review_warehouse_tables(conn)
        invoices = conn.execute(
            "select id, doc_number, upper(currency_id), total_amount, "
            "cast(left(transaction_date, 10) as date) from raw_quickbooks.invoice "
            "where coalesce(lower(_fivetran_deleted), '') <> 'true' "
            "and cast(left(transaction_date, 10) as date) <= ? order by id limit 5",
            [AS_OF],
        ).fetchall()
        _record_review_queue(conn, invoices)
        _record_deliveries(conn, invoices[:3])
    return path


# ---------------------------------------------------------------------------------------
# dbt on both warehouses
# ---------------------------------------------------------------------------------------
def _dbt(command: list[str], folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DBT), *command, "--project-dir", str(DBT_PROJECT),
         "--profiles-dir", str(DBT_PROJECT), "--target-path", str(folder / "target"),
         "--log-path", str(folder / "logs"), "--vars", DBT_VARS],
        env=os.environ | env, capture_output=True, text=True, check=False,
    )


def _assert_ok(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-8000:]}{result.stderr[-2000:]}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        server.create_database(DATABASE)
        yield server


@pytest.fixture(scope="module")
def built(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Both warehouses built from the same raw layer; the CLI's push and grant outputs."""
    folder = tmp_path_factory.mktemp("pg_warehouse")
    warehouse = _build_raw_layer(folder)
    env = {"Q2C_WAREHOUSE": str(warehouse), "Q2C_HOME": str(folder / "home"),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "False", **postgres.environment(DATABASE)}
    _assert_ok(_dbt(["build"], folder / "duckdb", env), "dbt build on DuckDB")

    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("Q2C_TEST_BI_PASSWORD", BI_PASSWORD)
        pushed = cli_main(["warehouse", "push-postgres"])
        _assert_ok(_dbt(["build", "--target", "postgres"], folder / "postgres", env),
                   "dbt build on Postgres")
        granted = [cli_main(["warehouse", "grant-bi-role", "--role", BI_ROLE,
                             "--password-env", "Q2C_TEST_BI_PASSWORD"]) for _ in range(2)]
    manifest = json.loads((folder / "duckdb" / "target" / "manifest.json").read_text())
    return {"folder": folder, "env": env, "warehouse": warehouse, "manifest": manifest,
            "pushed": pushed, "granted": granted}


def _models(manifest: dict, folders: tuple[str, ...]) -> list[dict]:
    return sorted(
        (node for node in manifest["nodes"].values()
         if node["resource_type"] == "model" and node["original_file_path"].startswith(folders)),
        key=lambda node: node["original_file_path"],
    )


def _sort_key(row: tuple) -> tuple:
    return tuple((0, "") if value is None else (1, value) for value in row)


def _same(left: object, right: object) -> bool:
    """Equal value and Python type: a Decimal equals only a Decimal of exactly that value
    (0.0000 and 0 agree: Postgres drops the scale of an untyped coalesce(sum, 0))."""
    return type(left) is type(right) and left == right


def _difference(relation: str, duck: duckdb.DuckDBPyConnection, pg_cur) -> str | None:
    duck_result = duck.execute(f"select * from {relation}")
    duck_columns = [c[0] for c in duck_result.description]
    duck_rows = sorted(duck_result.fetchall(), key=_sort_key)
    pg_cur.execute(f"select * from {relation}")
    pg_columns = [c[0] for c in pg_cur.description]
    pg_rows = sorted(pg_cur.fetchall(), key=_sort_key)
    if duck_columns != pg_columns:
        return f"columns differ: DuckDB {duck_columns}, Postgres {pg_columns}"
    if len(duck_rows) != len(pg_rows):
        return f"{len(duck_rows)} rows on DuckDB, {len(pg_rows)} on Postgres"
    for duck_row, pg_row in zip(duck_rows, pg_rows, strict=True):
        if not all(_same(a, b) for a, b in zip(duck_row, pg_row, strict=True)):
            cells = [f"{c}: {a!r} vs {b!r}" for c, a, b in zip(duck_columns, duck_row, pg_row,
                                                               strict=True) if not _same(a, b)]
            return (f"first differing row (DuckDB vs Postgres) {'; '.join(cells)}\n"
                    f"  DuckDB   {duck_row}\n  Postgres {pg_row}")
    return None


# ---------------------------------------------------------------------------------------
# Identical marts
# ---------------------------------------------------------------------------------------
def test_every_mart_and_reporting_view_is_identical_on_duckdb_and_postgres(
    built: dict, postgres: PostgresServer
) -> None:
    models = _models(built["manifest"], COMPARED_FOLDERS)
    differences, row_counts = [], {}
    with duckdb.connect(str(built["warehouse"]), read_only=True) as duck, \
            closing(postgres.connect(DATABASE)) as pg, pg.cursor() as pg_cur:
        for node in models:
            relation = f'"{node["schema"]}"."{node["alias"]}"'
            row_counts[relation] = duck.execute(f"select count(*) from {relation}").fetchone()[0]
            difference = _difference(relation, duck, pg_cur)
            if difference:
                differences.append(f"{node['name']} ({relation}): {difference}")

    assert differences == [], "\n".join(differences)
    for relation in ('"core"."fct_invoices"', '"kpi"."kpi_ar_aging"', '"kpi"."kpi_dso_monthly"',
                     '"reporting"."fct_invoices"', '"reporting"."fct_deliveries"',
                     '"reporting"."kpi_approval_sla"', '"reporting"."mart_review_queue"'):
        assert row_counts.get(relation, 0) > 0, f"{relation} is empty or was not compared"


def test_macros_parse_edge_cases_alike_on_both_warehouses(
    built: dict, postgres: PostgresServer
) -> None:
    """Values the demo data does not hold: the dispatched macros must agree on them too."""
    values = [
        "12", " 12 ", "12.5", "-0.00005", "1e3", ".5", "1,234.50", "39,00", "", "abc",
        "12345678901234567", "1e400", "2147483648", "30.0", "0x10",
        "2021-01-18 6:16:26", "2018-12-18 18:20:30.829", "2021-01-19", "2021-1-5",
        "2021-01-19T10:00:00Z", "2021-01-19T10:00:00+01:00", "2021-01-19 10:00:00-0530",
        "2021-01-19 10:00:00+01", "2023-04-26 23:59:59.000000 UTC",
        "2021-01-19T10:00:00.123456789Z", "2021-02-30", "2020-02-29", "2021-01-19 24:00:00",
        "2021/01/19", "2021-01-19xyz", "2026-01-11T00:30:00+01:00", "true", "FALSE", "y",
        "maybe", "de", "Germany", "Müller Widgets GmbH & Co. KG", "O’Reilly Media, Inc.",
        "ÄÖÜ Trading Ltd", "https://www.Acme.de/about?x=1", "billing@ACME.de", "DE 111.111.111",
    ]
    rows = ", ".join(f"({i}, '{v}')" for i, v in enumerate(values))
    inline = (
        f"with v (i, s) as (values {rows}) select i, "
        "{{ q2c_amount('s') }} as amount, {{ q2c_decimal('s', 9, 4) }} as percent, "
        "{{ q2c_int('s') }} as whole, {{ q2c_parse_timestamp('s') }} as ts, "
        "{{ q2c_parse_date('s') }} as day, {{ q2c_parse_bool('s') }} as flag, "
        "{{ q2c_normalize_name('s') }} as name, {{ q2c_web_domain('s') }} as web, "
        "{{ q2c_email_domain('s') }} as mail, {{ q2c_normalize_tax_id('s') }} as tax, "
        "{{ q2c_surrogate_key(['s', 'i']) }} as skey, "
        "{{ q2c_regex_full_match('s', '[a-z]{2}') }} as two_letters, "
        "{{ q2c_days_between('cast(' ~ q2c_parse_date('s') ~ ' as date)', q2c_as_of_date()) }}"
        " as days from v order by i"
    )
    compiled = {}
    for target in ("duckdb", "postgres"):
        result = _dbt(["compile", "--quiet", "--target", target, "--inline", inline],
                      built["folder"] / f"compile-{target}", built["env"])
        _assert_ok(result, f"dbt compile --inline on {target}")
        compiled[target] = result.stdout
    duck_rows = duckdb.connect().execute(compiled["duckdb"]).fetchall()
    pg_rows = _query(postgres, compiled["postgres"])

    differing = [f"{values[d[0]]!r}: DuckDB {d} Postgres {p}"
                 for d, p in zip(duck_rows, pg_rows, strict=True)
                 if not all(_same(a, b) for a, b in zip(d, p, strict=True))]
    assert differing == [], "\n".join(differing)
    by_value = {values[row[0]]: row for row in duck_rows}
    assert by_value["1,234.50"][1] is None and by_value["12.5"][1] == Decimal("12.5000")
    assert by_value["12.5"][3] is None and by_value["30.0"][3] == 30
    assert by_value["2021-01-19 10:00:00-0530"][4] == dt.datetime(2021, 1, 19, 15, 30)
    assert by_value["2021-02-30"][4] is None and by_value["2021-01-19 24:00:00"][4] is None
    assert by_value["O’Reilly Media, Inc."][7] == "o’reilly media"


# ---------------------------------------------------------------------------------------
# The copy to Postgres
# ---------------------------------------------------------------------------------------
def test_push_copies_raw_tables_as_text_and_keeps_ops_types(
    built: dict, postgres: PostgresServer
) -> None:
    assert built["pushed"] == 0
    with duckdb.connect(str(built["warehouse"]), read_only=True) as duck:
        duck_invoices = duck.execute(
            'select id, total_amount, _fivetran_deleted from raw_quickbooks."invoice" '
            "order by id").fetchall()
    pg_invoices = _query(postgres, 'select id, total_amount, _fivetran_deleted '
                                   'from raw_quickbooks."invoice" order by id')
    types = {row[0]: row[1:] for row in _query(
        postgres, "select table_schema || '.' || table_name || '.' || column_name, "
        "data_type, numeric_precision, numeric_scale from information_schema.columns "
        "where (table_schema, table_name, column_name) in "
        "(('raw_quickbooks', 'invoice', 'total_amount'), "
        "('q2c_ops', 'review_queue', 'total_amount'), "
        "('q2c_ops', 'review_queue', 'queued_at'), "
        "('q2c_ops', 'outbox_payloads', 'has_notice'))")}

    assert pg_invoices == duck_invoices and len(pg_invoices) > 30
    assert types == {
        "raw_quickbooks.invoice.total_amount": ("text", None, None),
        "q2c_ops.review_queue.total_amount": ("numeric", 20, 4),
        "q2c_ops.review_queue.queued_at": ("timestamp without time zone", None, None),
        "q2c_ops.outbox_payloads.has_notice": ("boolean", None, None),
    }


def test_a_second_push_replaces_rows_and_recreates_a_table_whose_columns_changed(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    postgres.create_database("q2c_shapes")
    warehouse = tmp_path / "shapes.duckdb"
    with duckdb.connect(str(warehouse)) as duck:
        duck.execute("create schema raw_demo")
        duck.execute("create table raw_demo.kept (id varchar, note varchar)")
        duck.execute("create table raw_demo.changed (id varchar)")
        duck.execute("insert into raw_demo.kept values ('1', 'a\"b,c'), ('2', ''), ('3', null)")
        duck.execute("insert into raw_demo.changed values ('x')")
    conn = postgres.connect("q2c_shapes")
    try:
        first = push_to_postgres(warehouse, conn, ops_tables=())
        with duckdb.connect(str(warehouse)) as duck:
            duck.execute("delete from raw_demo.kept where id = '1'")
            duck.execute("alter table raw_demo.changed add column amount decimal(20, 4)")
            duck.execute("insert into raw_demo.changed values ('y', 12.5)")
        second = push_to_postgres(warehouse, conn, ops_tables=())
    finally:
        conn.close()

    assert [(t.relation, t.rows, t.action) for t in first] == [
        ("raw_demo.changed", 1, "created"), ("raw_demo.kept", 3, "created")]
    assert [(t.relation, t.rows, t.action) for t in second] == [
        ("raw_demo.changed", 2, "recreated"), ("raw_demo.kept", 2, "replaced")]
    assert _query(postgres, "select id, note from raw_demo.kept order by id",
                  dbname="q2c_shapes") == [("2", ""), ("3", None)]
    assert _query(postgres, "select id, amount from raw_demo.changed order by id",
                  dbname="q2c_shapes") == [("x", None), ("y", Decimal("12.5000"))]


def test_push_refuses_to_drop_other_teams_views_on_a_table_whose_columns_changed(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """A view q2c does not own stops the push, untouched; dbt's own views are dropped."""
    postgres.create_database("q2c_dependents")
    warehouse = tmp_path / "dependents.duckdb"
    with duckdb.connect(str(warehouse)) as duck:
        duck.execute("create schema raw_demo")
        duck.execute("create table raw_demo.invoice (id varchar)")
        duck.execute("create table raw_demo.kept (id varchar)")
        duck.execute("insert into raw_demo.invoice values ('x')")
        duck.execute("insert into raw_demo.kept values ('k')")
    conn = postgres.connect("q2c_dependents")
    try:
        push_to_postgres(warehouse, conn, ops_tables=())
        for statement in (
            "create schema finance",
            "create view finance.open_invoices as select id from raw_demo.invoice",
            "create view raw_demo.invoice_ids as select id from raw_demo.invoice",
            "create schema reporting", "create schema core", "create schema kpi",
            "create view reporting.invoices as select id from raw_demo.invoice",
            "create view core.invoice_count as select count(*) as n from reporting.invoices",
            "create materialized view kpi.invoice_total as select n from core.invoice_count",
            "create view finance.dashboard as select n from core.invoice_count",
        ):
            _query(postgres, statement, dbname="q2c_dependents")
        with duckdb.connect(str(warehouse)) as duck:
            duck.execute("alter table raw_demo.invoice add column amount decimal(20, 4)")
            duck.execute("insert into raw_demo.invoice values ('y', 12.5)")
            duck.execute("delete from raw_demo.kept")

        with pytest.raises(PostgresWarehouseError) as refused:
            push_to_postgres(warehouse, conn, ops_tables=())
        message = str(refused.value)
        unchanged = (
            _query(postgres, "select * from finance.open_invoices", dbname="q2c_dependents"),
            _query(postgres, "select n from finance.dashboard", dbname="q2c_dependents"),
            _query(postgres, "select * from raw_demo.kept", dbname="q2c_dependents"),
        )

        for view in ("finance.open_invoices", "finance.dashboard", "raw_demo.invoice_ids"):
            _query(postgres, f"drop view {view}", dbname="q2c_dependents")
        second = push_to_postgres(warehouse, conn, ops_tables=())
    finally:
        conn.close()

    assert "raw_demo.invoice is read by view finance.dashboard, view finance.open_invoices, " \
           "view raw_demo.invoice_ids" in message
    assert "pg_dump --schema-only -t finance.dashboard -t finance.open_invoices " \
           "-t raw_demo.invoice_ids" in message
    assert "view reporting.invoices" not in message and "Nothing was changed" in message
    assert unchanged == ([("x",)], [(1,)], [("k",)])
    assert [(t.relation, t.rows, t.action) for t in second] == [
        ("raw_demo.invoice", 2, "recreated"), ("raw_demo.kept", 0, "replaced")]
    assert _query(postgres, "select to_regclass('reporting.invoices'), "
                            "to_regclass('core.invoice_count'), to_regclass('kpi.invoice_total'), "
                            "to_regnamespace('finance') is not null",
                  dbname="q2c_dependents") == [(None, None, None, True)]


def test_push_refuses_a_database_whose_text_rules_differ_from_duckdb(
    built: dict, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _query(postgres, "create database q2c_latin1 template template0 encoding 'LATIN1' "
                     "locale 'C'", dbname="postgres")
    for name, value in built["env"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("Q2C_PG_DBNAME", "q2c_latin1")

    assert cli_main(["warehouse", "push-postgres"]) == 1
    error = capsys.readouterr().err
    assert "its encoding is LATIN1, not UTF8" in error
    assert "--locale=C.UTF-8" in error
    assert _query(postgres, "select count(*) from pg_namespace where nspname like 'raw%'",
                  dbname="q2c_latin1") == [(0,)]


def test_push_without_connection_settings_names_the_missing_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("Q2C_PG_USER", raising=False)
    monkeypatch.delenv("Q2C_PG_DBNAME", raising=False)

    assert cli_main(["warehouse", "push-postgres"]) == 1
    assert "Q2C_PG_USER and Q2C_PG_DBNAME not set" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# The BI role
# ---------------------------------------------------------------------------------------
def _query(postgres: PostgresServer, sql: str, dbname: str = DATABASE, **login) -> list:
    """Run one statement in its own connection (autocommit) and return its rows, if any."""
    conn = postgres.connect(dbname, **login)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _as_bi(postgres: PostgresServer, sql: str) -> list:
    return _query(postgres, sql, user=BI_ROLE, password=BI_PASSWORD)


def test_bi_role_reads_reporting_and_is_denied_everything_else(
    built: dict, postgres: PostgresServer
) -> None:
    assert built["granted"] == [0, 0]
    staging_view = next(node for node in _models(built["manifest"], ("models/staging/",)))
    [(invoices,)] = _query(postgres, "select count(*) from core.fct_invoices")

    assert _as_bi(postgres, "select count(*) from reporting.fct_invoices") == [(invoices,)]
    for relation in ('raw_quickbooks."invoice"',
                     f'staging."{staging_view["alias"]}"', "intermediate.int_erp_invoices",
                     "q2c_ops.review_queue", "core.fct_invoices"):
        with pytest.raises(pg_errors.InsufficientPrivilege, match="permission denied"):
            _as_bi(postgres, f"select count(*) from {relation}")
    with pytest.raises(psycopg2.Error, match="read-only transaction|permission denied"):
        _as_bi(postgres, "create table reporting.scratch (x integer)")


def test_bi_role_reads_views_dbt_creates_later(postgres: PostgresServer, built: dict) -> None:
    _query(postgres, "create view reporting.later_view as select 42 as answer")
    try:
        assert _as_bi(postgres, "select answer from reporting.later_view") == [(42,)]
    finally:
        _query(postgres, "drop view reporting.later_view")


def test_grant_without_password_creates_a_group_role_that_cannot_log_in(
    built: dict, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in built["env"].items():
        monkeypatch.setenv(name, value)

    assert cli_main(["warehouse", "grant-bi-role", "--role", "q2c_bi_readers"]) == 0
    assert "cannot log in" in capsys.readouterr().out
    assert _query(postgres, "select rolcanlogin, has_table_privilege('q2c_bi_readers', "
                            "'reporting.kpi_ar_aging', 'select'), has_table_privilege("
                            "'q2c_bi_readers', 'kpi.kpi_ar_aging', 'select') "
                            "from pg_roles where rolname = 'q2c_bi_readers'"
                  ) == [(False, True, False)]


# ---------------------------------------------------------------------------------------
# The BI role: memberships, effective rights, re-runs, the password
# ---------------------------------------------------------------------------------------
def _small_q2c_database(postgres: PostgresServer, dbname: str, **owner: str) -> None:
    """Raw, ops, core and reporting objects made by `owner` (the superuser if none)."""
    if owner:
        _query(postgres, f'create database "{dbname}" owner "{owner["user"]}" template '
                         "template0 encoding 'UTF8' locale 'C.UTF-8'", dbname="postgres")
    else:
        postgres.create_database(dbname)
    for statement in (
        "create schema raw_demo", "create table raw_demo.invoice (id text)",
        "insert into raw_demo.invoice values ('x')", "create schema q2c_ops",
        "create table q2c_ops.review_queue (id text)", "create schema core",
        "create table core.fct_invoices as select id from raw_demo.invoice",
        "create schema reporting",
        "create view reporting.fct_invoices as select id from core.fct_invoices",
    ):
        _query(postgres, statement, dbname=dbname, **owner)


def _point_cli_at(monkeypatch: pytest.MonkeyPatch, postgres: PostgresServer, dbname: str,
                  **login: str) -> None:
    for name, value in postgres.environment(dbname).items():
        monkeypatch.setenv(name, value)
    if login:
        monkeypatch.setenv("Q2C_PG_USER", login["user"])
        monkeypatch.setenv("Q2C_PG_PASSWORD", login["password"])


def test_grant_refuses_a_role_that_is_a_member_of_the_table_owner_then_revokes_on_request(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loader = {"user": "m_loader", "password": "loader-pw"}
    for statement in (
        "create role m_loader login password 'loader-pw'",
        "create role m_analyst login password 'analyst-pw'", "grant m_loader to m_analyst",
        "create role m_staff nologin", "grant m_staff to m_analyst",
        "create role m_team nologin", "grant m_loader to m_team",
        "create role m_auditor login noinherit password 'auditor-pw'",
        "grant m_team to m_auditor",
    ):
        _query(postgres, statement, dbname="postgres")
    _small_q2c_database(postgres, "q2c_members", **loader)
    _point_cli_at(monkeypatch, postgres, "q2c_members")
    analyst = {"dbname": "q2c_members", "user": "m_analyst", "password": "analyst-pw"}

    refused = cli_main(["warehouse", "grant-bi-role", "--role", "m_analyst"])
    refusal = capsys.readouterr().err
    still_member = _query(postgres, "select pg_has_role('m_analyst', 'm_loader', 'MEMBER')",
                          dbname="q2c_members")
    revoked = cli_main(["warehouse", "grant-bi-role", "--role", "m_analyst",
                        "--revoke-memberships"])
    revoked_out = capsys.readouterr().out
    nested = cli_main(["warehouse", "grant-bi-role", "--role", "m_auditor"])
    nested_refusal = capsys.readouterr().err

    assert refused == 1 and still_member == [(True,)]
    # m_loader owns four schemas and four relations: three shown, five more.
    assert "m_analyst → m_loader (owns schema core, owns core.fct_invoices, owns schema " \
           "q2c_ops and 5 more)" in refusal
    assert 'REVOKE "m_loader" FROM "m_analyst"' in refusal
    assert "--revoke-memberships" in refusal and "m_staff" not in refusal
    assert revoked == 0 and "memberships revoked: m_loader" in revoked_out
    assert _query(postgres, "select pg_has_role('m_analyst', 'm_loader', 'MEMBER'), "
                            "pg_has_role('m_analyst', 'm_staff', 'MEMBER')",
                  dbname="q2c_members") == [(False, True)]
    assert _query(postgres, "select id from reporting.fct_invoices", **analyst) == [("x",)]
    for statement in ("select * from raw_demo.invoice", "select * from q2c_ops.review_queue",
                      "drop table raw_demo.invoice", "drop view reporting.fct_invoices",
                      "set role m_loader"):
        with closing(postgres.connect(**analyst)) as conn, conn.cursor() as cur:
            conn.autocommit = True
            cur.execute("set default_transaction_read_only = off")
            with pytest.raises(pg_errors.InsufficientPrivilege):
                cur.execute(statement)
    assert nested == 1
    assert "m_auditor → m_team → m_loader (owns schema core" in nested_refusal
    assert 'REVOKE "m_team" FROM "m_auditor"' in nested_refusal


def test_grant_checks_effective_rights_and_refuses_what_public_or_ownership_gives(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _small_q2c_database(postgres, "q2c_public")
    _query(postgres, "create role p_owner_bi nologin", dbname="postgres")
    for statement in ("grant usage on schema raw_demo to public",
                      "grant select on raw_demo.invoice to public",
                      "create table core.scratch (x int)",
                      "alter table core.scratch owner to p_owner_bi"):
        _query(postgres, statement, dbname="q2c_public")
    _point_cli_at(monkeypatch, postgres, "q2c_public")

    public_leak = cli_main(["warehouse", "grant-bi-role", "--role", "p_bi"])
    public_error = capsys.readouterr().err
    _query(postgres, "revoke select on raw_demo.invoice from public; "
                     "revoke usage on schema raw_demo from public", dbname="q2c_public")
    owner_leak = cli_main(["warehouse", "grant-bi-role", "--role", "p_owner_bi"])
    owner_error = capsys.readouterr().err
    clean = cli_main(["warehouse", "grant-bi-role", "--role", "p_bi"])

    assert public_leak == 1
    assert "p_bi usage on schema raw_demo (granted to PUBLIC), p_bi select on " \
           "raw_demo.invoice (granted to PUBLIC)" in public_error
    assert owner_leak == 1 and "p_owner_bi owns core.scratch" in owner_error
    assert clean == 0
    assert _query(postgres, "select rolname from pg_roles where rolname like 'p\\_%' "
                            "order by 1", dbname="q2c_public") == [("p_bi",), ("p_owner_bi",)]


def test_grant_runs_again_as_a_createrole_user_and_changes_only_what_differs(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loader = {"user": "c_loader", "password": "loader-pw"}
    for statement in ("create role c_loader login createrole password 'loader-pw'",
                      "create role c_old_bi login createdb password 'old-pw'",
                      "create role c_replica login replication password 'r-pw'"):
        _query(postgres, statement, dbname="postgres")
    _small_q2c_database(postgres, "q2c_createrole", **loader)
    _point_cli_at(monkeypatch, postgres, "q2c_createrole", **loader)
    monkeypatch.setenv("C_BI_PASSWORD", "bi-pw-1")

    runs = [cli_main(["warehouse", "grant-bi-role", "--role", "c_bi", "--password-env",
                      "C_BI_PASSWORD"]) for _ in range(2)]
    runs += [cli_main(["warehouse", "grant-bi-role", "--role", "c_bi_group"])
             for _ in range(2)]
    capsys.readouterr()
    old = cli_main(["warehouse", "grant-bi-role", "--role", "c_old_bi"])
    old_out = capsys.readouterr().out
    replica = cli_main(["warehouse", "grant-bi-role", "--role", "c_replica"])
    replica_error = capsys.readouterr().err

    assert runs == [0, 0, 0, 0]
    assert _query(postgres, "select id from reporting.fct_invoices", dbname="q2c_createrole",
                  user="c_bi", password="bi-pw-1") == [("x",)]
    assert old == 0 and "attributes changed: NOCREATEDB" in old_out
    assert _query(postgres, "select rolname, rolcanlogin, rolcreatedb from pg_roles where "
                            "rolname in ('c_bi', 'c_bi_group', 'c_old_bi') order by 1",
                  dbname="postgres") == [("c_bi", True, False), ("c_bi_group", False, False),
                                         ("c_old_bi", True, False)]
    assert replica == 1
    assert "role c_replica is REPLICATION" in replica_error
    assert 'ALTER ROLE "c_replica" NOREPLICATION' in replica_error


def test_scram_verifier_answers_the_rfc_7677_exchange() -> None:
    """The example exchange of RFC 7677, section 3: user `user`, password `pencil`."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,"
                    f"i=4096,c=biws,r={nonce}").encode()
    client_proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")

    verifier = scram_sha256_verifier("pencil", salt=salt)
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    stored_key, server_key = (base64.b64decode(part) for part in keys.split(":"))
    client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(client_proof, client_signature, strict=True))

    assert (method, iterations_salt) == ("SCRAM-SHA-256", "4096:W22ZaJ0SNY7soEsUEjb6gQ==")
    assert hashlib.sha256(client_key).digest() == stored_key
    assert base64.b64encode(hmac.new(server_key, auth_message, hashlib.sha256).digest()) \
        == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert scram_sha256_verifier("pencil") != scram_sha256_verifier("pencil")  # fresh salt


def test_bi_password_reaches_postgres_only_as_a_scram_verifier(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A no-break space and a roman numeral: libpq logs in with SASLprep's "IX" and a space.
    password = "Plain-7f3c-Kennwort\u00a0Grüße-\u2168"
    _small_q2c_database(postgres, "q2c_scram")
    _query(postgres, "alter database q2c_scram set log_statement = 'all'", dbname="postgres")
    _point_cli_at(monkeypatch, postgres, "q2c_scram")
    monkeypatch.setenv("S_BI_PASSWORD", password)

    runs = [cli_main(["warehouse", "grant-bi-role", "--role", "s_bi", "--password-env",
                      "S_BI_PASSWORD"]) for _ in range(2)]
    log = (postgres.folder / "server.log").read_text(errors="replace")
    [(secret,)] = _query(postgres, "select rolpassword from pg_authid where rolname = 's_bi'")
    salt = base64.b64decode(secret.split("$")[1].split(":")[1])

    assert runs == [0, 0]
    assert "Plain-7f3c" not in log
    assert 'create role "s_bi" login' in log and 'alter role "s_bi"' in log  # logged
    assert secret.startswith("SCRAM-SHA-256$4096:") and len(salt) == 16
    assert _query(postgres, "select current_user", dbname="q2c_scram", user="s_bi",
                  password=password) == [("s_bi",)]
    assert _query(postgres, "select current_user", dbname="q2c_scram", user="s_bi",
                  password="Plain-7f3c-Kennwort Grüße-IX") == [("s_bi",)]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        _query(postgres, "select 1", dbname="q2c_scram", user="s_bi",
               password=password.replace("\u2168", "IX!"))


# ---------------------------------------------------------------------------------------
# Contracts, exposures and docs
# ---------------------------------------------------------------------------------------
def test_reporting_models_enforce_a_documented_contract(built: dict) -> None:
    reporting = _models(built["manifest"], ("models/reporting/",))
    undocumented = [
        f"{node['name']}.{column['name']}" for node in reporting
        for column in node["columns"].values()
        if not column.get("description") or not column.get("data_type")
    ]

    assert {node["schema"] for node in reporting} == {"reporting"}
    assert all(node["config"]["contract"]["enforced"] for node in reporting)
    assert all(node["config"]["materialized"] == "view" for node in reporting)
    assert undocumented == []


def test_every_kpi_mart_and_the_listed_marts_are_published_in_reporting(built: dict) -> None:
    marts = {node["name"] for node in _models(built["manifest"], ("models/marts/",))}
    published = {node["alias"] for node in _models(built["manifest"], ("models/reporting/",))}
    expected = {name for name in marts if name.startswith("kpi_")} | {
        "dim_accounts", "fct_invoices", "fct_invoice_lines", "fct_payments",
        "fct_payment_allocations", "fct_credit_notes", "fct_deliveries",
        "mart_delivery_dead_letters", "mart_review_queue", "fct_invoice_balances",
        "fct_cash_applications", "mart_unallocated_cash", "mart_reconciliation_exceptions",
        "mart_reconciliation_summary",
    }

    assert expected - published == set()


def test_finance_dashboard_exposure_reads_only_reporting_models(built: dict) -> None:
    exposure = built["manifest"]["exposures"]["exposure.q2c.finance_dashboard"]
    parents = exposure["depends_on"]["nodes"]
    nodes = built["manifest"]["nodes"]

    assert exposure["owner"]["name"] == "Finance" and exposure["type"] == "dashboard"
    assert {nodes[p]["alias"] for p in parents} >= {
        "kpi_dso_monthly", "kpi_ar_aging", "fct_invoices", "fct_payments",
        "fct_invoice_balances", "fct_cash_applications", "mart_unallocated_cash",
        "mart_reconciliation_exceptions", "mart_reconciliation_summary"}
    assert {nodes[p]["schema"] for p in parents} == {"reporting"}


def test_docs_generate_catalogs_the_reporting_views_with_their_descriptions(
    built: dict,
) -> None:
    folder = built["folder"] / "docs"
    _assert_ok(_dbt(["docs", "generate", "--target", "postgres"], folder, built["env"]),
               "dbt docs generate on Postgres")
    catalog = json.loads((folder / "target" / "catalog.json").read_text())
    reporting = _models(built["manifest"], ("models/reporting/",))

    assert catalog["errors"] is None
    missing = [node["unique_id"] for node in reporting if node["unique_id"] not in catalog["nodes"]]
    assert missing == []
    invoices = catalog["nodes"]["model.q2c.rpt_fct_invoices"]
    assert invoices["metadata"]["schema"] == "reporting"
    assert invoices["metadata"]["name"] == "fct_invoices"
    assert invoices["metadata"]["type"] == "VIEW"
    declared = built["manifest"]["nodes"]["model.q2c.rpt_fct_invoices"]["columns"]
    assert invoices["columns"]["total_amount"]["type"] == "numeric(20,4)"
    assert invoices["columns"]["invoice_key"]["comment"] == declared["invoice_key"]["description"]
