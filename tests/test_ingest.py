"""Landing CSV exports into the raw schemas: what loads, what is quarantined and why."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from q2c.sources.landing import load_source, source_folder
from q2c.sources.schema import DEFAULT_SOURCES, RAW_TABLES, SOURCES, raw_table
from q2c.warehouse import connect

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _csv_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def warehouse(tmp_path):
    with connect(tmp_path / "warehouse.duckdb") as conn:
        yield conn


def test_shared_fivetran_exports_load_unchanged_with_every_row(warehouse):
    for source in ("salesforce", "quickbooks"):
        load_source(warehouse, SHARED_DATA, source, "run-1")

    expected = len(_csv_rows(SHARED_DATA / "fivetran-quickbooks" / "invoice_data.csv"))
    loaded = warehouse.sql("select count(*) from raw_quickbooks.invoice").fetchone()[0]
    assert loaded == expected == 16
    value = warehouse.sql(
        "select total_amount, transaction_date, _q2c_source_row from raw_quickbooks.invoice "
        "where id = '40113'"
    ).fetchone()
    assert value == ("565214", "2021-01-19", 2)


def test_a_missing_table_lands_empty_and_is_reported(warehouse):
    loads = load_source(warehouse, SHARED_DATA, "quickbooks", "run-1")

    term = next(load for load in loads if load.table.name == "term")
    assert term.status == "missing_file"
    columns = [row[0] for row in warehouse.sql("describe raw_quickbooks.term").fetchall()]
    assert set(raw_table("quickbooks", "term").columns) <= set(columns)
    report = warehouse.sql(
        "select status from q2c_ops.ingest_report where table_name = 'term'"
    ).fetchone()
    assert report == ("missing_file",)


def test_missing_contract_columns_are_added_empty_and_named(warehouse):
    loads = load_source(warehouse, SHARED_DATA, "quickbooks", "run-1")

    invoice = next(load for load in loads if load.table.name == "invoice")
    assert "custom_salesforce_opportunity_id" in invoice.missing_columns
    nulls = warehouse.sql(
        "select count(*) from raw_quickbooks.invoice "
        "where custom_salesforce_opportunity_id is null"
    ).fetchone()[0]
    assert nulls == 16


def test_bad_rows_are_quarantined_with_file_row_field_and_reason(tmp_path, warehouse):
    table = raw_table("quickbooks", "invoice")
    path = tmp_path / "landing" / "quickbooks" / "invoice.csv"
    header = ["id", "doc_number", "total_amount", "_fivetran_synced"]
    _write_csv(path, header, [
        ["1", "INV-1", "100.00", "2026-01-01 10:00:00"],
        ["", "INV-2", "50.00", "2026-01-01 10:00:00"],
        ["3", "INV-3", "70.00"],
        ["1", "INV-1", "110.00", "2026-01-02 9:00:00"],
        ["4", "INV-4", "", "2026-01-01 10:00:00"],
    ])

    loads = load_source(warehouse, tmp_path / "landing", "quickbooks", "run-7")

    invoice = next(load for load in loads if load.table is table)
    assert (invoice.rows_read, invoice.rows_loaded, invoice.rows_quarantined) == (5, 2, 3)
    kept = warehouse.sql(
        "select id, total_amount, _q2c_source_row from raw_quickbooks.invoice order by id"
    ).fetchall()
    assert kept == [("1", "110.00", 5), ("4", None, 6)]
    quarantined = warehouse.sql(
        "select row_number, field, reason, raw_record from q2c_ops.quarantine "
        "where table_name = 'invoice' order by row_number"
    ).fetchall()
    assert [(row, field) for row, field, _, _ in quarantined] == [(2, "id"), (3, "id"), (4, None)]
    assert "duplicate key; the version on line 5 was kept" in quarantined[0][2]
    assert json.loads(quarantined[0][3])["total_amount"] == "100.00"
    assert quarantined[1][2] == "key column `id` is empty"
    assert quarantined[2][2] == "row has 3 fields but the header has 4"
    files = warehouse.sql(
        "select distinct file from q2c_ops.quarantine where table_name = 'invoice'"
    ).fetchall()
    assert files == [(str(path),)]


def test_a_row_with_bytes_that_are_not_utf8_is_quarantined_alone(tmp_path, warehouse):
    folder = tmp_path / "landing" / "quickbooks"
    folder.mkdir(parents=True)
    (folder / "invoice.csv").write_bytes(b"id,customer_memo\n1,Caf\xe9\n2,ok\n")

    loads = {load.table.name: load for load in load_source(warehouse, tmp_path / "landing",
                                                             "quickbooks", "run-1")}

    assert loads["invoice"].rows_loaded == 1
    assert [q.reason for q in loads["invoice"].quarantined] == [
        "byte 0xE9 is not valid UTF-8; re-export the table as UTF-8"]
    assert loads["invoice"].quarantined[0].row_number == 2


def test_an_unbalanced_quote_fails_the_file_instead_of_swallowing_rows(tmp_path, warehouse):
    folder = tmp_path / "landing" / "quickbooks"
    folder.mkdir(parents=True)
    (folder / "invoice.csv").write_text('id,customer_memo\n1,"oops\n2,b\n3,c\n')

    loads = {load.table.name: load for load in load_source(warehouse, tmp_path / "landing",
                                                             "quickbooks", "run-1")}

    assert loads["invoice"].status == "failed"
    assert "a quote is probably unbalanced" in loads["invoice"].message


def test_keys_are_trimmed_so_padded_duplicates_are_caught(tmp_path, warehouse):
    path = tmp_path / "landing" / "quickbooks" / "invoice.csv"
    _write_csv(path, ["id", "total_amount", "_fivetran_synced"], [
        ["1008 ", "10.00", "2026-11-30 10:17:27"],
        [" 1008", "12.00", "2026-11-30 9:17:27"],
    ])

    load_source(warehouse, tmp_path / "landing", "quickbooks", "run-1")

    kept = warehouse.sql("select id, total_amount from raw_quickbooks.invoice").fetchall()
    assert kept == [("1008", "10.00")]


def test_headers_written_with_spaces_or_capitals_map_to_the_contract(tmp_path, warehouse):
    path = tmp_path / "landing" / "quickbooks" / "invoice.csv"
    _write_csv(path, ["ID", "Customer Memo"], [["1", "thanks"]])

    loads = {load.table.name: load for load in load_source(warehouse, tmp_path / "landing",
                                                             "quickbooks", "run-1")}

    assert "customer_memo" not in loads["invoice"].missing_columns
    assert warehouse.sql("select customer_memo from raw_quickbooks.invoice").fetchone() == (
        "thanks",)


def test_a_landing_folder_of_fivetran_exports_is_found_by_its_name():
    assert source_folder(SHARED_DATA, "salesforce") == SHARED_DATA / "fivetran-salesforce"
    assert source_folder(SHARED_DATA, "stripe") == SHARED_DATA / "fivetran-stripe"
    assert {t.source for t in RAW_TABLES} <= set(SOURCES)
    assert set(DEFAULT_SOURCES) == {"salesforce", "quickbooks"}


def test_a_warehouse_held_by_another_process_gives_a_clear_error(tmp_path):
    import subprocess
    import sys

    from q2c.warehouse import WarehouseBusyError

    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ready', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseBusyError, match="in use by another process"):
            with connect(path):
                pass
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_line_numbers_stay_true_after_a_value_that_spans_lines(tmp_path, warehouse):
    path = tmp_path / "landing" / "quickbooks" / "invoice.csv"
    path.parent.mkdir(parents=True)
    path.write_text(
        'id,customer_memo,total_amount\n'
        '1,"Thanks,\nsee you soon",10.00\n'
        ',no id here,5.00\n'
    )

    load_source(warehouse, tmp_path / "landing", "quickbooks", "run-1")

    memo = warehouse.sql("select customer_memo from raw_quickbooks.invoice").fetchone()[0]
    line = warehouse.sql(
        "select row_number from q2c_ops.quarantine where table_name = 'invoice'"
    ).fetchone()[0]
    assert memo == "Thanks,\nsee you soon"
    assert line == 4


def test_header_names_with_quotes_load_as_columns_of_exactly_that_name(tmp_path, warehouse):
    folder = tmp_path / "landing" / "quickbooks"
    folder.mkdir(parents=True)
    (folder / "term.csv").write_text(
        'id,"x""y","a"" as varchar) as b, 1 as ""c",name\n3,v,w,Net 30\n')

    loads = {load.table.name: load for load in load_source(warehouse, tmp_path / "landing",
                                                             "quickbooks", "run-1")}

    assert loads["term"].status == "loaded_with_warnings"
    # Header names are normalized (spaces become underscores), then quoted as identifiers.
    row = warehouse.sql(
        'select id, "x""y", "a""_as_varchar)_as_b,_1_as_""c", name from raw_quickbooks.term'
    ).fetchone()
    assert row == ("3", "v", "w", "Net 30")


def test_an_empty_trailing_header_column_is_left_out_and_reported(tmp_path, warehouse):
    folder = tmp_path / "landing" / "hubspot"
    folder.mkdir(parents=True)
    (folder / "owner.csv").write_text("owner_id,email,\nO1,a@b.example,\nO2,c@d.example\n")

    loads = {load.table.name: load for load in load_source(warehouse, tmp_path / "landing",
                                                             "hubspot", "run-1")}

    assert (loads["owner"].status, loads["owner"].rows_loaded) == ("loaded_with_warnings", 2)
    assert loads["owner"].message == "column(s) 3 had no name and no values and were left out"
    columns = [r[0] for r in warehouse.sql("describe raw_hubspot.owner").fetchall()]
    assert "" not in columns
    assert warehouse.sql("select email from raw_hubspot.owner order by owner_id").fetchall() == [
        ("a@b.example",), ("c@d.example",)]


def test_a_value_under_an_unnamed_column_fails_the_file_naming_it_until_fixed(
    tmp_path, warehouse
):
    path = tmp_path / "landing" / "hubspot" / "owner.csv"
    path.parent.mkdir(parents=True)
    path.write_text("owner_id,email\nO1,a@b.example\n")
    load_source(warehouse, tmp_path / "landing", "hubspot", "run-1")
    path.write_text("owner_id,email,\nO1,a@b.example,\nO2,c@d.example,x\n")

    loads = {load.table.name: load for load in load_source(warehouse, tmp_path / "landing",
                                                             "hubspot", "run-2")}

    assert loads["owner"].status == "failed"
    assert loads["owner"].message.startswith(
        f"{path}: column 3 has no name in the header but holds a value on line 3")
    report = warehouse.sql("select message from q2c_ops.ingest_report where run_id = 'run-2' "
                           "and table_name = 'owner'").fetchone()[0]
    assert str(path) in report
    assert warehouse.sql("select owner_id from raw_hubspot.owner").fetchall() == [("O1",)]

    path.write_text("owner_id,email,note\nO1,a@b.example,\nO2,c@d.example,x\n")
    fixed = {load.table.name: load for load in load_source(warehouse, tmp_path / "landing",
                                                             "hubspot", "run-3")}

    assert fixed["owner"].rows_loaded == 2


def test_a_file_the_warehouse_refuses_fails_alone_naming_the_file(tmp_path, warehouse):
    folder = tmp_path / "landing" / "quickbooks"
    folder.mkdir(parents=True)
    (folder / "term.csv").write_text("id,na\x00me\n3,Net 30\n")
    (folder / "item.csv").write_text("id,name\n11,Glacier Boot\n")

    loads = {load.table.name: load for load in load_source(warehouse, tmp_path / "landing",
                                                             "quickbooks", "run-1")}

    assert loads["term"].status == "failed"
    assert loads["term"].message.startswith(
        f"{folder / 'term.csv'}: could not be loaded into raw_quickbooks.term (ParserException")
    assert "fix or remove that file" in loads["term"].message
    assert loads["item"].rows_loaded == 1
    assert warehouse.sql("select count(*) from raw_quickbooks.term").fetchone() == (0,)


def test_a_value_over_the_field_limit_is_reported_as_too_long_not_as_a_quote(
    tmp_path, warehouse
):
    folder = tmp_path / "landing" / "salesforce"
    folder.mkdir(parents=True)
    (folder / "case.csv").write_text(
        "id,description\nC1,short\nC2," + "x" * (17 * 2**20) + "\nC3,short\n")

    loads = {load.table.name: load for load in load_source(warehouse, tmp_path / "landing",
                                                             "salesforce", "run-1")}

    message = loads["case"].message
    assert loads["case"].status == "failed"
    assert "the record starting on line 3 has a value longer than 16 MiB" in message
    assert "quote" not in message
