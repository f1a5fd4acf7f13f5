"""HubSpot from landed files to the conformed CRM adapters, built with dbt for real.

The shared Fivetran HubSpot seeds are landed through `load_source` together with the
hand-made rows of `hubspot_support` (appended below the seed rows), then one `dbt build`
runs on a temporary DuckDB warehouse over the HubSpot staging models, the six
int_hubspot__* adapters and the int_crm_* unions that read them. Expected values are worked
out by hand in the comments of `hubspot_support`. The same build on a Postgres the test
starts must give the same union rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hubspot_support import SHARED_HUBSPOT, shared_file, shared_rows, write_landing
from postgres_server import running_postgres

from q2c.sources.landing import TableLoad, load_source
from q2c.sources.schema import tables_of
from q2c.warehouse import connect
from q2c.warehouse_postgres import push_to_postgres

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
ENTITIES = ("crm_accounts", "crm_contacts", "crm_users", "crm_opportunities",
            "crm_opportunity_lines", "crm_interactions")
SELECT = " ".join(["source:hubspot", "staging.hubspot", "+intermediate.hubspot"]
                  + [f"+int_{e}" for e in ENTITIES])
ON = '{"q2c_hubspot_enabled": true}'


def _dbt(tmp: Path, warehouse: Path, *args: str,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = os.environ | (env or {}) | {"Q2C_WAREHOUSE": str(warehouse),
                                      "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    command = [str(DBT), *args, "--project-dir", str(DBT_PROJECT),
               "--profiles-dir", str(DBT_PROJECT), "--target-path", str(tmp / "target"),
               "--log-path", str(tmp / "logs")]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


class Built:
    """The warehouse after ingest and dbt build, with what ingest reported."""

    def __init__(self, path: Path, loads: list[TableLoad], target: Path) -> None:
        self.path = path
        self.loads = {load.table.name: load for load in loads}
        self.target = target

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.path), read_only=True) as conn:
            return conn.execute(sql, params or []).fetchall()

    def row(self, model: str, key: str, value: str) -> dict:
        with duckdb.connect(str(self.path), read_only=True) as conn:
            cursor = conn.execute(f"select * from intermediate.{model} where {key} = ?", [value])
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        assert len(rows) == 1, f"{model}.{key} = {value}: {len(rows)} rows"
        return dict(zip(names, rows[0], strict=True))

    def ids(self, model: str, key: str) -> set[str]:
        return {r[0] for r in self.query(f"select {key} from intermediate.{model}")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("hubspot")
    landing = tmp / "landing"
    write_landing(landing)
    path = tmp / "warehouse.duckdb"
    with connect(path) as conn:
        loads = load_source(conn, landing, "hubspot", "run-hubspot")
        # The unions also read the Salesforce adapters; with no files they land empty.
        load_source(conn, landing, "salesforce", "run-hubspot")

    result = _dbt(tmp, path, "build", "--select", SELECT, "--indirect-selection", "cautious",
                  "--vars", ON)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return Built(path, loads, tmp / "target")


# ---------------------------------------------------------------------------------------
# Ingest of the shared seeds
# ---------------------------------------------------------------------------------------
def test_every_shared_hubspot_seed_loads_whole(tmp_path: Path) -> None:
    with connect(tmp_path / "warehouse.duckdb") as conn:
        loads = {load.table.name: load for load in
                 load_source(conn, SHARED_HUBSPOT.parent, "hubspot", "run-shared")}
        quarantined = conn.execute(
            "select count(*) from q2c_ops.quarantine where source = 'hubspot'"
        ).fetchone()[0]
        reported = conn.execute(
            "select table_name, rows_read, rows_loaded, rows_quarantined "
            "from q2c_ops.ingest_report where source = 'hubspot'"
        ).fetchall()

    seeded = {t.name for t in tables_of("hubspot") if shared_file(t) is not None}
    # Every table q2c reads has a seed except the two line item tables.
    assert set(loads) - seeded == {"line_item", "line_item_deal"}
    assert {loads[n].status for n in ("line_item", "line_item_deal")} == {"missing_file"}
    for name in seeded:
        expected = len(shared_rows(loads[name].table))
        assert loads[name].status in ("loaded", "loaded_with_warnings"), name
        assert loads[name].rows_read == loads[name].rows_loaded == expected, name
    # Counted by hand: the seeds hold no row without its key, no short row, no duplicate.
    assert quarantined == 0
    assert len(reported) == len(tables_of("hubspot")) == 23
    assert sum(r[1] for r in reported) == 458
    # Custom company properties the seed does not have are reported, not invented.
    assert "property_vat_number" in loads["company"].missing_columns
    assert "property_hs_meeting_title" in loads["engagement_meeting"].missing_columns


def test_unusable_fixture_rows_are_quarantined_with_file_and_line(built: Built) -> None:
    rows = built.query(
        "select table_name, file, row_number, record_id, field, reason "
        "from q2c_ops.quarantine where source = 'hubspot' order by table_name"
    )

    # contact_data.csv: 22 seed rows on lines 2-23, the id-less fixture row is the 5th after.
    # deal_data.csv: 44 seed rows, 5 fixture deals on lines 46-50, the cut row on line 51.
    # ticket_data.csv: 25 seed rows; the older fx-t1 is the first fixture row, line 27.
    assert [(r[0], Path(r[1]).name, r[2], r[3], r[4]) for r in rows] == [
        ("contact", "contact_data.csv", 28, None, "id"),
        ("deal", "deal_data.csv", 51, "fx-d-broken", None),
        ("ticket", "ticket_data.csv", 27, "fx-t1", "id"),
    ]
    assert "fields but the header has" in rows[1][5]
    assert "line 28 was kept" in rows[2][5]
    assert built.loads["ticket"].rows_read == 25 + 6
    assert built.loads["ticket"].rows_loaded == 25 + 5


def test_hubspot_source_tests_run_when_enabled_and_not_otherwise(built: Built,
                                                               tmp_path: Path) -> None:
    results = json.loads((built.target / "run_results.json").read_text())["results"]
    source_tests = [r for r in results if r["unique_id"].startswith("test.q2c.source_")
                    and "_hubspot_" in r["unique_id"]]

    # The keys of all 23 tables: unique and not_null on 14 single-column keys, 9 unique
    # combinations, and not_null on both ids of deal_company, deal_contact, line_item_deal.
    assert len(source_tests) == 14 * 2 + 9 + 3 * 2
    assert {r["status"] for r in source_tests} == {"pass"}

    # With the default vars the source is off: nothing of it, or built on it, is listed.
    listed = _dbt(tmp_path, tmp_path / "unused.duckdb", "--quiet", "ls",
                  "--select", "source:hubspot+", "--output", "name")
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-2000:]
    assert listed.stdout.strip() == ""


# ---------------------------------------------------------------------------------------
# Conformed values, computed by hand
# ---------------------------------------------------------------------------------------
def test_companies_become_accounts_and_deleted_ones_are_dropped(built: Built) -> None:
    ids = built.ids("int_hubspot__crm_accounts", "account_id")
    seed = {r["id"] for r in shared_rows(built.loads["company"].table)}

    assert ids == seed | {"fx-co1", "fx-co0"}
    assert len(seed) == 24
    alpha = built.row("int_hubspot__crm_accounts", "account_id", "fx-co1")
    assert alpha == {
        "account_id": "fx-co1", "account_number": None, "parent_account_id": "fx-co0",
        "owner_id": "fx-o1", "account_name": "Alpha Tools GmbH", "account_type": None,
        "industry": None, "website": "alpha-tools.de", "phone": None,
        "vat_number": "DE111111111", "preferred_language": "de", "segment": "mid_market",
        "invoice_delivery_channel": "peppol", "einvoice_format": "xrechnung",
        "peppol_participant_id": "0204:991-1", "x12_partner": None,
        "billing_street": "Hauptstr. 1, Haus B", "billing_city": "Berlin",
        "billing_postal_code": "10115", "billing_state": None, "billing_country": "Germany",
        "billing_country_code": "DE", "currency_code": None,
        "created_at": dt.datetime(2020, 1, 2, 3, 4, 5), "updated_at": None,
    }
    assert built.row("int_hubspot__crm_accounts", "account_id", "fx-co0")[
        "billing_country_code"] == "DE"
    # Seed countries are names: 22 United States, 2 United Kingdom.
    assert sorted(built.query(
        "select billing_country_code, count(*) from intermediate.int_hubspot__crm_accounts "
        "where account_id not like 'fx%' group by 1"
    )) == [("GB", 2), ("US", 22)]


def test_billing_contacts_by_property_then_job_title(built: Built) -> None:
    billing = {cid: built.row("int_hubspot__crm_contacts", "contact_id", cid)
               for cid in ("fx-ct1", "fx-ct2", "fx-ct3", "fx-ct4")}

    assert {cid: row["is_billing_contact"] for cid, row in billing.items()} == {
        "fx-ct1": True, "fx-ct2": True, "fx-ct3": False, "fx-ct4": False,
    }
    anna = billing["fx-ct1"]
    assert (anna["account_id"], anna["contact_name"], anna["email"],
            anna["mailing_country_code"]) == ("fx-co1", "Anna Alpha", "anna@alpha-tools.de", "DE")
    assert len(built.ids("int_hubspot__crm_contacts", "contact_id")) == 22 + 4


def test_owners_are_users_active_with_a_hubspot_user(built: Built) -> None:
    olga = built.row("int_hubspot__crm_users", "user_id", "fx-o1")
    queue = built.row("int_hubspot__crm_users", "user_id", "fx-o2")

    assert olga == {"user_id": "fx-o1", "user_name": "Olga Owner",
                    "email": "olga@example.com", "is_active": True}
    assert (queue["user_name"], queue["is_active"]) == ("queue@example.com", False)


def test_deal_stages_decide_won_and_lost(built: Built) -> None:
    won = built.row("int_hubspot__crm_opportunities", "opportunity_id", "fx-d1")
    outcome = {d: (row["is_closed"], row["is_won"]) for d, row in (
        (d, built.row("int_hubspot__crm_opportunities", "opportunity_id", d))
        for d in ("fx-d2", "fx-d3", "fx-d4"))}

    assert won["is_closed"] is True and won["is_won"] is True
    assert won["amount"] == Decimal("12500.50") and isinstance(won["amount"], Decimal)
    assert (won["currency_code"], won["account_id"], won["stage_name"], won["close_date"]) == (
        "EUR", "fx-co1", "Closed won", dt.date(2021, 2, 15))
    assert outcome == {"fx-d2": (True, False), "fx-d3": (False, False), "fx-d4": (True, True)}
    assert "fx-d5" not in built.ids("int_hubspot__crm_opportunities", "opportunity_id")
    # The seed's 44 deals carry no stage: open or closed is unknown, never guessed.
    assert built.query(
        "select count(*), count(is_closed), count(is_won) from "
        "intermediate.int_hubspot__crm_opportunities where opportunity_id not like 'fx%'"
    ) == [(44, 0, 0)]


def test_line_item_totals(built: Built) -> None:
    lines = {r[0]: r[1:] for r in built.query(
        "select opportunity_line_item_id, opportunity_id, total_price, product_id, "
        "product_code, quantity, unit_price from intermediate.int_hubspot__crm_opportunity_lines"
    )}

    assert set(lines) == {"fx-li1", "fx-li2", "fx-li3", "fx-li4"}
    assert lines["fx-li1"] == ("fx-d1", Decimal("325.35"), "fx-p1", "W-1", Decimal("3"),
                               Decimal("120.5"))
    assert lines["fx-li2"][:3] == ("fx-d1", Decimal("199.99"), "fx-p2")
    assert lines["fx-li3"][:2] == ("fx-d3", Decimal("899"))
    assert lines["fx-li4"][:2] == ("fx-d2", Decimal("90"))


def test_tickets_about_invoices_are_billing(built: Built) -> None:
    t1 = built.row("int_hubspot__crm_interactions", "interaction_id", "fx-t1")
    t2 = built.row("int_hubspot__crm_interactions", "interaction_id", "fx-t2")
    flags = {t: (row["is_billing"], row["is_dispute"], row["contact_count"]) for t, row in (
        (t, built.row("int_hubspot__crm_interactions", "interaction_id", t))
        for t in ("fx-t3", "fx-t4"))}

    assert {k: t1[k] for k in ("interaction_type", "is_billing", "is_dispute",
                               "invoice_number", "subject", "account_id", "contact_id",
                               "owner_id", "status", "priority", "channel", "is_closed",
                               "contact_count", "reference_number")} == {
        "interaction_type": "ticket", "is_billing": True, "is_dispute": False,
        "invoice_number": "INV-1042", "subject": "Invoice INV-1042 charged twice",
        "account_id": "fx-co1", "contact_id": "fx-ct1", "owner_id": "fx-o1",
        "status": "Waiting on us", "priority": "HIGH", "channel": "EMAIL",
        "is_closed": False, "contact_count": 2, "reference_number": "fx-t1",
    }
    assert (t2["is_billing"], t2["is_dispute"], t2["invoice_number"], t2["is_closed"],
            t2["closed_at"]) == (True, True, "INV-1043", True, dt.datetime(2021, 2, 25, 12))
    assert flags == {"fx-t3": (False, False, None), "fx-t4": (True, False, None)}
    assert "fx-t5" not in built.ids("int_hubspot__crm_interactions", "interaction_id")


def test_engagements_are_typed_on_their_company(built: Built) -> None:
    call = built.row("int_hubspot__crm_interactions", "interaction_id", "fx-e1")
    kinds = {r[0]: r[1:] for r in built.query(
        "select interaction_id, interaction_type, account_id, owner_id, is_billing, "
        "is_closed, created_at from intermediate.int_hubspot__crm_interactions "
        "where interaction_id in ('fx-e2', 'fx-e3', 'fx-e4', 'fx-e5', 'fx-e6')"
    )}

    assert {k: call[k] for k in ("interaction_type", "account_id", "contact_id", "owner_id",
                                 "subject", "is_billing", "status", "channel",
                                 "created_at")} == {
        "interaction_type": "call", "account_id": "fx-co1", "contact_id": "fx-ct1",
        "owner_id": "fx-o1", "subject": "Call about INVOICE", "is_billing": True,
        "status": "COMPLETED", "channel": "phone",
        "created_at": dt.datetime(2021, 2, 21, 10, 30),
    }
    assert kinds == {
        "fx-e2": ("email", None, "fx-o2", False, None, dt.datetime(2021, 2, 22, 8)),
        "fx-e3": ("meeting", None, None, False, None, dt.datetime(2021, 3, 1, 14)),
        "fx-e4": ("note", None, None, False, None, dt.datetime(2021, 2, 23, 8)),
        "fx-e5": ("task", "fx-co1", None, True, True, None),
    }


def test_shared_tickets_and_engagements_all_become_interactions(built: Built) -> None:
    counts = dict(built.query(
        "select interaction_type, count(*) from intermediate.int_hubspot__crm_interactions "
        "where interaction_id not like 'fx%' group by 1"
    ))

    # Seeds: 25 tickets, 1 call, 1 email, 100 meetings, 1 note, 2 tasks.
    assert counts == {"ticket": 25, "call": 1, "email": 1, "meeting": 100, "note": 1,
                      "task": 2}
    seed_call = built.row("int_hubspot__crm_interactions", "interaction_id", "19732910159")
    assert (seed_call["interaction_type"], seed_call["contact_id"]) == ("call", "501")


@pytest.mark.parametrize("entity", ENTITIES)
def test_unions_carry_the_hubspot_rows(built: Built, entity: str) -> None:
    key = {"crm_accounts": "account_id", "crm_contacts": "contact_id",
           "crm_users": "user_id", "crm_opportunities": "opportunity_id",
           "crm_opportunity_lines": "opportunity_line_item_id",
           "crm_interactions": "interaction_id"}[entity]

    union = {r[0] for r in built.query(
        f"select {key} from intermediate.int_{entity} where source_system = 'hubspot'")}

    assert union == built.ids(f"int_hubspot__{entity}", key)
    assert any(i.startswith("fx") for i in union)


def test_postgres_builds_the_same_conformed_rows(built: Built, tmp_path: Path) -> None:
    with running_postgres() as server:
        server.create_database("q2c_hubspot")
        pg = server.connect("q2c_hubspot")
        try:
            push_to_postgres(built.path, pg)
        finally:
            pg.close()
        result = _dbt(tmp_path, built.path, "build", "--target", "postgres", "--select",
                      SELECT, "--indirect-selection", "cautious", "--vars", ON,
                      env=server.environment("q2c_hubspot"))
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        pg = server.connect("q2c_hubspot")
        try:
            for entity in ENTITIES:
                sql = (f"select * from intermediate.int_{entity} "
                       "where source_system = 'hubspot'")
                with pg.cursor() as cur:
                    cur.execute(sql)
                    on_postgres = sorted(cur.fetchall(), key=repr)
                on_duckdb = sorted(built.query(sql), key=repr)
                assert on_postgres == on_duckdb, entity
                assert on_duckdb, entity
        finally:
            pg.close()
