"""File drops: exports in a folder or an S3 prefix, checked, placed for ingest, read once."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import pytest
from aws_server import aws, aws_server  # noqa: F401

from assets.ingest import raw_asset_key, raw_assets
from orchestration.resources import Q2CSettings
from orchestration.sensors import INGEST_DROPS_JOB_NAME, ingest_drops_job, landing_file_sensor
from q2c.sources.file_drops import (
    DropFile,
    DropManifest,
    FolderDrops,
    S3Drops,
    open_drops,
    process_drops,
    run_key,
    table_for,
)
from q2c.sources.landing import load_source
from q2c.sources.schema import tables_of
from q2c.warehouse import connect


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _landed(landing: Path, source: str, table: str) -> dict[str, dict]:
    with (landing / source / f"{table}.csv").open(newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


@pytest.fixture
def drops(tmp_path):
    return tmp_path / "drops"


@pytest.fixture
def landing(tmp_path):
    return tmp_path / "landing"


@pytest.fixture
def manifest(tmp_path):
    return DropManifest(tmp_path / "ops.sqlite")


def _process(drops: Path, manifest: DropManifest, landing: Path):
    results, _ = process_drops(FolderDrops(drops), manifest, landing)
    return {r.file.path: r for r in results}


def test_columns_are_read_by_name_new_ones_kept_missing_ones_reported(
    drops, landing, manifest, tmp_path
):
    _write_csv(drops / "quickbooks" / "invoice_2026-01-31.csv",
               ["Total Amount", "id", "Doc Number", "customer_id", "sales_rep"],
               [["879.75", "1001", "INV-1001", "58", "Ann"],
                ["439.88", "1002", "INV-1002", "59", "Bo"]])

    result = _process(drops, manifest, landing)["quickbooks/invoice_2026-01-31.csv"]

    assert result.status == "placed" and result.table == "invoice" and result.rows == 2
    assert result.new_columns == ["sales_rep"]
    assert "transaction_date" in result.missing_columns
    assert "total_amount" not in result.missing_columns
    with connect(tmp_path / "warehouse.duckdb") as conn:
        load_source(conn, landing, "quickbooks", "run-1")
        row = conn.sql(
            "select doc_number, customer_id, total_amount, sales_rep, transaction_date "
            "from raw_quickbooks.invoice where id = '1002'"
        ).fetchone()
    assert row == ("INV-1002", "59", "439.88", "Bo", None)


def test_a_renamed_column_is_reported_and_never_shifts_values(drops, landing, manifest):
    _write_csv(drops / "quickbooks" / "invoice.csv", ["id", "doc_number", "total_amount"],
               [["1001", "INV-1001", "879.75"]])
    _process(drops, manifest, landing)
    _write_csv(drops / "quickbooks" / "invoice_2026-02-01.csv",
               ["id", "total_amt", "doc_number"], [["1001", "900.00", "INV-1001"]])

    result = _process(drops, manifest, landing)["quickbooks/invoice_2026-02-01.csv"]

    assert result.new_columns == ["total_amt"]
    assert "total_amount" in result.missing_columns
    invoice = _landed(landing, "quickbooks", "invoice")["1001"]
    assert (invoice["doc_number"], invoice["total_amount"], invoice["total_amt"]) == (
        "INV-1001", "", "900.00")


def test_a_reordered_header_is_noticed_and_read_by_name(drops, landing, manifest):
    _write_csv(drops / "quickbooks" / "customer.csv", ["id", "display_name", "balance"],
               [["58", "Wheelworks", "10.00"]])
    first = _process(drops, manifest, landing)["quickbooks/customer.csv"]
    _write_csv(drops / "quickbooks" / "customer_2.csv", ["balance", "id", "display_name"],
               [["20.00", "59", "Trailblazers"]])

    second = _process(drops, manifest, landing)["quickbooks/customer_2.csv"]

    assert not first.reordered and second.reordered
    assert "new order" in second.message
    customers = _landed(landing, "quickbooks", "customer")
    assert (customers["59"]["display_name"], customers["59"]["balance"]) == (
        "Trailblazers", "20.00")
    assert customers["58"]["balance"] == "10.00"


def test_a_file_without_its_key_column_is_quarantined_with_the_reason(
    drops, landing, manifest
):
    _write_csv(drops / "quickbooks" / "invoice.csv", ["doc_number", "total_amount"],
               [["INV-1001", "879.75"]])

    result = _process(drops, manifest, landing)["quickbooks/invoice.csv"]

    assert result.status == "quarantined"
    assert "quickbooks/invoice.csv: key column(s) id of quickbooks.invoice missing" in (
        result.message)
    assert not (drops / "quickbooks" / "invoice.csv").exists()
    moved = drops / "_quarantine" / "quickbooks" / "invoice.csv"
    assert moved.is_file()
    reason = (moved.parent / "invoice.csv.reason.txt").read_text()
    assert "quickbooks/invoice.csv" in reason and "key column(s) id" in reason
    assert not (landing / "quickbooks" / "invoice.csv").exists()


def test_files_that_name_no_table_are_quarantined_and_partial_uploads_ignored(
    drops, landing, manifest
):
    _write_csv(drops / "quickbooks" / "widgets.csv", ["id"], [["1"]])
    _write_csv(drops / "acme" / "invoice.csv", ["id"], [["1"]])
    (drops / "quickbooks" / "invoice.xlsx").write_bytes(b"PK\x03\x04")
    _write_csv(drops / "quickbooks" / "invoice.csv.part", ["id"], [["1"]])

    results = _process(drops, manifest, landing)

    assert sorted(results) == ["acme/invoice.csv", "quickbooks/invoice.xlsx",
                               "quickbooks/widgets.csv"]
    assert {r.status for r in results.values()} == {"quarantined"}
    assert "no quickbooks table is named by this file" in results[
        "quickbooks/widgets.csv"].message
    assert "folder 'acme' is no source" in results["acme/invoice.csv"].message
    assert "CSV or JSON" in results["quickbooks/invoice.xlsx"].message
    assert (drops / "quickbooks" / "invoice.csv.part").exists()


def test_json_arrays_and_json_lines_land_as_text_with_exact_decimals(
    drops, landing, manifest
):
    (drops / "quickbooks").mkdir(parents=True)
    (drops / "quickbooks" / "customer.json").write_text(json.dumps([
        {"id": "58", "display_name": "Wheelworks", "active": True},
        {"id": "59", "display_name": "Trailblazers", "active": False, "tags": ["vip"]},
    ]).replace('"active": true', '"active": true, "balance": 1175.10'))
    (drops / "quickbooks" / "payment.jsonl").write_text(
        '{"id": "2001", "total_amount": 500.00, "customer_id": "58"}\n\n'
        '{"id": "2002", "total_amount": 0.10, "customer_id": "59", "unapplied_amount": null}\n'
    )

    results = _process(drops, manifest, landing)

    assert results["quickbooks/customer.json"].rows == 2
    customers = _landed(landing, "quickbooks", "customer")
    assert (customers["58"]["balance"], customers["58"]["active"]) == ("1175.10", "true")
    assert (customers["59"]["active"], customers["59"]["tags"]) == ("false", '["vip"]')
    payments = _landed(landing, "quickbooks", "payment")
    assert (payments["2001"]["total_amount"], payments["2002"]["total_amount"]) == (
        "500.00", "0.10")
    assert payments["2002"]["unapplied_amount"] == ""


def test_each_file_is_processed_once_and_a_replaced_file_again(drops, landing, manifest):
    path = _write_csv(drops / "quickbooks" / "term.csv", ["id", "name", "due_days"],
                      [["3", "Net 30", "30"]])
    assert len(_process(drops, manifest, landing)) == 1
    assert _process(drops, manifest, landing) == {}

    _write_csv(path, ["id", "name", "due_days"], [["3", "Net 45", "45"], ["4", "Net 60", "60"]])
    again = _process(drops, manifest, landing)

    assert again["quickbooks/term.csv"].rows == 2
    terms = _landed(landing, "quickbooks", "term")
    assert (terms["3"]["name"], terms["4"]["due_days"]) == ("Net 45", "60")
    assert terms["3"]["_q2c_drop_file"] == "quickbooks/term.csv"


def test_unusable_rows_are_left_out_counted_and_kept_with_their_line(
    drops, landing, manifest
):
    _write_csv(drops / "quickbooks" / "item.csv", ["id", "name", "unit_price"], [
        ["11", "Glacier Boot", "460"], ["", "No id", "1"], ["12", "Fitting"],
        ["11", "Glacier Boot v2", "470"],
    ])

    result = _process(drops, manifest, landing)["quickbooks/item.csv"]

    assert (result.rows, result.rejected_rows, result.duplicate_keys) == (1, 2, 1)
    assert _landed(landing, "quickbooks", "item")["11"]["name"] == "Glacier Boot v2"
    rejected = drops / "_quarantine" / "quickbooks" / "item.csv.rejected-rows.csv"
    with rejected.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["line"], r["reason"], r["name"]) for r in rows] == [
        ("2", "duplicate key; the version on line 5 was kept", "Glacier Boot"),
        ("3", "key column `id` is empty", "No id"),
        ("4", "row has 2 fields but the header has 3", "Fitting")]


def test_of_a_key_repeated_in_a_file_the_most_recent_version_is_kept_as_ingest_does(
    drops, landing, manifest
):
    _write_csv(drops / "quickbooks" / "invoice.csv", ["id", "total_amount", "updated_at"], [
        ["1001", "978.75", "2026-01-20 17:05:00"], ["1001", "879.75", "2026-01-19 9:00:00"]])

    result = _process(drops, manifest, landing)["quickbooks/invoice.csv"]

    assert (result.rows, result.duplicate_keys, result.rejected_rows) == (1, 1, 0)
    assert _landed(landing, "quickbooks", "invoice")["1001"]["total_amount"] == "978.75"
    rejected = drops / "_quarantine" / "quickbooks" / "invoice.csv.rejected-rows.csv"
    with rejected.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["line"], r["reason"], r["total_amount"]) for r in rows] == [
        ("3", "duplicate key; the version on line 2 was kept", "879.75")]


def test_s3_drops_are_placed_quarantined_and_read_once(aws, landing, manifest):  # noqa: F811
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="q2c-drops",
                     CreateBucketConfiguration={"LocationConstraint": aws.region})
    s3.put_object(Bucket="q2c-drops", Key="exports/quickbooks/invoice.csv",
                  Body=b"id,doc_number,total_amount\n1001,INV-1001,879.75\n")
    s3.put_object(Bucket="q2c-drops", Key="exports/quickbooks/term.csv",
                  Body=b"name,due_days\nNet 30,30\n")
    store = open_drops("s3://q2c-drops/exports", s3_endpoint_url=aws.endpoint_url)

    results, batch = process_drops(store, manifest, landing)

    by_path = {r.file.path: r for r in results}
    assert by_path["quickbooks/invoice.csv"].status == "placed"
    etag = s3.head_object(Bucket="q2c-drops", Key="exports/quickbooks/invoice.csv")["ETag"]
    assert by_path["quickbooks/invoice.csv"].file.identity == etag.strip('"')
    assert _landed(landing, "quickbooks", "invoice")["1001"]["total_amount"] == "879.75"
    assert by_path["quickbooks/term.csv"].status == "quarantined"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="q2c-drops")["Contents"]}
    assert keys == {"exports/quickbooks/invoice.csv",
                    "exports/_quarantine/quickbooks/term.csv",
                    "exports/_quarantine/quickbooks/term.csv.reason.txt"}
    reason = s3.get_object(Bucket="q2c-drops",
                           Key="exports/_quarantine/quickbooks/term.csv.reason.txt")
    assert "key column(s) id" in reason["Body"].read().decode()
    assert batch == 1
    assert process_drops(store, manifest, landing) == ([], None)


def test_a_name_that_only_starts_with_a_table_name_is_quarantined_not_merged(
    drops, landing, manifest
):
    _write_csv(drops / "stripe" / "invoice_line_items.csv",
               ["id", "invoice_id", "amount", "currency"], [["in_1", "in_1", "500", "eur"]])
    _write_csv(drops / "stripe" / "invoice.csv", ["id", "total", "currency", "number"],
               [["in_1", "12345", "eur", "INV-1"]])
    _write_csv(drops / "quickbooks" / "customer_addresses.csv", ["id", "city"],
               [["58", "Paris"]])
    _write_csv(drops / "quickbooks" / "customer.csv", ["id", "display_name"], [["58", "ACME"]])

    results = _process(drops, manifest, landing)

    lines = results["stripe/invoice_line_items.csv"]
    assert (lines.status, lines.table) == ("quarantined", None)
    assert "'invoice_line_items' only starts with the table name 'invoice_line_item'" in (
        lines.message)
    assert "customer, invoice, invoice_line_item, charge" in lines.message
    assert results["quickbooks/customer_addresses.csv"].status == "quarantined"
    invoice = _landed(landing, "stripe", "invoice")["in_1"]
    assert (invoice["total"], invoice["_q2c_drop_file"]) == ("12345", "stripe/invoice.csv")
    assert "amount" not in invoice
    customer = _landed(landing, "quickbooks", "customer")["58"]
    assert customer["display_name"] == "ACME" and "city" not in customer
    assert (drops / "_quarantine" / "stripe" / "invoice_line_items.csv").is_file()


def test_a_file_names_its_table_exactly_or_with_a_date_or_number_after_it():
    named = {path: (source, table.name) for path in (
        "salesforce/account.csv", "salesforce/sf_account_data.csv",
        "quickbooks/invoice_data.json", "stripe/invoice_line_item.jsonl",
        "quickbooks/invoice_line_2026-01-31.csv", "quickbooks/invoice-3.ndjson",
        "quickbooks/Invoice.20260131T0900Z.CSV",
    ) for source, table in [table_for(path)]}

    assert named == {
        "salesforce/account.csv": ("salesforce", "account"),
        "salesforce/sf_account_data.csv": ("salesforce", "account"),
        "quickbooks/invoice_data.json": ("quickbooks", "invoice"),
        "stripe/invoice_line_item.jsonl": ("stripe", "invoice_line_item"),
        "quickbooks/invoice_line_2026-01-31.csv": ("quickbooks", "invoice_line"),
        "quickbooks/invoice-3.ndjson": ("quickbooks", "invoice"),
        "quickbooks/Invoice.20260131T0900Z.CSV": ("quickbooks", "invoice"),
    }
    for refused in ("quickbooks/invoice_a.json", "quickbooks/invoices.csv",
                    "quickbooks/invoice_line_items.csv", "salesforce/account_data.csv"):
        with pytest.raises(ValueError, match="no .* table is named by this file"):
            table_for(refused)


def test_json_keys_that_name_one_column_refuse_the_file(drops, landing, manifest):
    (drops / "quickbooks").mkdir(parents=True)
    (drops / "quickbooks" / "invoice.json").write_text(json.dumps(
        [{"id": "1", "Total Amount": "100.00", "total_amount": "999.99"}]))
    (drops / "quickbooks" / "payment.jsonl").write_text(
        '{"id": "2", "total_amount": "5.00"}\n{"id": "3", "total_amount": "1", '
        '"total_amount": "2"}\n')

    results = _process(drops, manifest, landing)

    invoice = results["quickbooks/invoice.json"]
    assert invoice.status == "quarantined"
    assert ("record 1 has the keys 'Total Amount' and 'total_amount', which both name the "
            "column 'total_amount'") in invoice.message
    payment = results["quickbooks/payment.jsonl"]
    assert payment.status == "quarantined"
    assert "the key 'total_amount' appears twice in one object on line 2" in payment.message
    assert not (landing / "quickbooks").exists()


def test_a_column_without_a_name_is_left_out_when_empty_and_refused_when_it_holds_values(
    drops, landing, manifest
):
    (drops / "hubspot").mkdir(parents=True)
    (drops / "hubspot" / "owner.csv").write_text("owner_id,email,\nO1,a@b.example,x\n")
    (drops / "hubspot" / "company.csv").write_text("id,name,,\n5001,Wheelworks,,\n5002,Velo\n")

    results = _process(drops, manifest, landing)

    owner = results["hubspot/owner.csv"]
    assert owner.status == "quarantined"
    assert "hubspot/owner.csv: column 3 has no name in the header but holds a value on " \
        "line 2" in owner.message
    company = results["hubspot/company.csv"]
    assert (company.status, company.rows) == ("placed", 2)
    assert "column(s) 3, 4 had no name and no values and were left out" in company.message
    with (landing / "hubspot" / "company.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = {row["id"]: row for row in reader}
    assert "" not in reader.fieldnames
    assert (rows["5001"]["name"], rows["5002"]["name"]) == ("Wheelworks", "Velo")


def test_a_replaced_file_of_the_same_size_and_time_is_placed_again(drops, landing, manifest):
    path = _write_csv(drops / "quickbooks" / "invoice.csv", ["id", "total_amount"],
                      [["50", "879.75"]])
    before = path.stat()
    _process(drops, manifest, landing)

    _write_csv(path, ["id", "total_amount"], [["50", "978.75"]])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = _process(drops, manifest, landing)

    assert path.stat().st_size == before.st_size
    assert again["quickbooks/invoice.csv"].status == "placed"
    assert _landed(landing, "quickbooks", "invoice")["50"]["total_amount"] == "978.75"


def test_a_value_over_the_field_limit_is_reported_as_too_long(drops, landing, manifest):
    (drops / "salesforce").mkdir(parents=True)
    (drops / "salesforce" / "case.csv").write_text(
        "id,description\nC1,short\nC2,\"" + "x" * (17 * 2**20) + "\"\n")

    result = _process(drops, manifest, landing)["salesforce/case.csv"]

    assert result.status == "quarantined"
    assert "the record starting on line 3 has a value longer than 16 MiB" in result.message
    assert "quote" not in result.message


def test_s3_keys_with_empty_segments_are_quarantined_and_never_read_as_another(
    aws, landing, manifest  # noqa: F811
):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="q2c-drops",
                     CreateBucketConfiguration={"LocationConstraint": aws.region})
    s3.put_object(Bucket="q2c-drops", Key="in/quickbooks//invoice.csv",
                  Body=b"id,total_amount\n77,770.00\n")
    s3.put_object(Bucket="q2c-drops", Key="in/quickbooks/invoice.csv",
                  Body=b"id,total_amount\n5,5.00\n")
    store = open_drops("s3://q2c-drops/in", s3_endpoint_url=aws.endpoint_url)

    results = {r.file.path: r for r in process_drops(store, manifest, landing)[0]}

    assert sorted(results) == ["quickbooks//invoice.csv", "quickbooks/invoice.csv"]
    odd = results["quickbooks//invoice.csv"]
    assert odd.status == "quarantined" and "empty or relative part" in odd.message
    assert results["quickbooks/invoice.csv"].status == "placed"
    assert {k: r["total_amount"] for k, r in _landed(landing, "quickbooks",
                                                      "invoice").items()} == {"5": "5.00"}
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="q2c-drops")["Contents"]}
    assert keys == {"in/quickbooks/invoice.csv", "in/_quarantine/quickbooks/_/invoice.csv",
                    "in/_quarantine/quickbooks/_/invoice.csv.reason.txt"}
    moved = s3.get_object(Bucket="q2c-drops", Key="in/_quarantine/quickbooks/_/invoice.csv")
    assert moved["Body"].read() == b"id,total_amount\n77,770.00\n"


class _VanishingS3Drops(S3Drops):
    """An S3 drop store whose `term.csv` is deleted right after it was listed, as another
    process (or a lifecycle rule) can do."""

    def files(self):
        found = super().files()
        self.client.delete_object(Bucket=self.bucket, Key=self._key("quickbooks/term.csv"))
        return found


def test_an_s3_object_gone_before_reading_fails_alone_and_is_tried_again(
    aws, landing, manifest  # noqa: F811
):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="q2c-drops",
                     CreateBucketConfiguration={"LocationConstraint": aws.region})
    s3.put_object(Bucket="q2c-drops", Key="in/quickbooks/invoice.csv",
                  Body=b"id,total_amount\n1,10.00\n")
    s3.put_object(Bucket="q2c-drops", Key="in/quickbooks/term.csv", Body=b"id,name\n3,Net 30\n")
    store = _VanishingS3Drops("s3://q2c-drops/in", aws.client("s3"))

    results, batch = process_drops(store, manifest, landing)

    by_path = {r.file.path: r for r in results}
    assert by_path["quickbooks/invoice.csv"].status == "placed"
    term = by_path["quickbooks/term.csv"]
    assert term.status == "failed"
    assert "quickbooks/term.csv: could not be read or placed (NoSuchKey" in term.message
    assert batch == 1
    assert not manifest.is_known(store.location, term.file)
    assert manifest.is_known(store.location, by_path["quickbooks/invoice.csv"].file)


@pytest.fixture
def sensor_env(monkeypatch, tmp_path, drops, landing):
    monkeypatch.setenv("Q2C_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("Q2C_FILE_DROPS", str(drops))
    monkeypatch.delenv("Q2C_OPS_STORE", raising=False)
    monkeypatch.delenv("Q2C_CONFIG", raising=False)
    return {"q2c": Q2CSettings(landing_dir=str(landing))}


def _identity(drops: Path, relative: str) -> DropFile:
    stat = (drops / relative).stat()
    digest = hashlib.sha256((drops / relative).read_bytes()).hexdigest()[:32]
    return DropFile(relative, f"{stat.st_size}:{stat.st_mtime_ns}:{digest}")


def test_sensor_places_drops_and_requests_one_ingest_run_keyed_by_the_files(
    sensor_env, drops, landing
):
    _write_csv(drops / "quickbooks" / "invoice.csv", ["id", "doc_number"], [["1001", "A"]])
    _write_csv(drops / "salesforce" / "account.csv", ["id", "name"], [["001A", "Wheelworks"]])

    result = landing_file_sensor(dg.build_sensor_context(resources=sensor_env))

    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests
    files = [_identity(drops, "quickbooks/invoice.csv"),
             _identity(drops, "salesforce/account.csv")]
    assert request.run_key == run_key(str(drops), files)
    expected = {raw_asset_key(source, table.name)
                for source in ("quickbooks", "salesforce") for table in tables_of(source)}
    assert set(request.asset_selection) == expected
    assert result.cursor == "1"
    assert (landing / "quickbooks" / "invoice.csv").is_file()
    assert (landing / "salesforce" / "account.csv").is_file()


def test_sensor_skips_when_nothing_new_and_repeats_a_request_it_did_not_record(
    sensor_env, drops
):
    _write_csv(drops / "quickbooks" / "term.csv", ["id", "name"], [["3", "Net 30"]])
    first = landing_file_sensor(dg.build_sensor_context(resources=sensor_env))

    after = landing_file_sensor(dg.build_sensor_context(resources=sensor_env,
                                                        cursor=first.cursor))
    lost_cursor = landing_file_sensor(dg.build_sensor_context(resources=sensor_env))

    assert isinstance(after, dg.SkipReason)
    assert [r.run_key for r in lost_cursor.run_requests] == [
        r.run_key for r in first.run_requests]

    _write_csv(drops / "quickbooks" / "item.csv", ["id", "name"], [["11", "Boot"]])
    later = landing_file_sensor(dg.build_sensor_context(resources=sensor_env,
                                                        cursor=first.cursor))
    (request,) = later.run_requests
    assert request.run_key == run_key(str(drops), [_identity(drops, "quickbooks/item.csv")])
    assert later.cursor == "2"
    assert request.tags["q2c/sources"] == "quickbooks"


def test_a_sensor_tick_with_only_refused_files_requests_no_run(sensor_env, drops):
    _write_csv(drops / "quickbooks" / "invoice.csv", ["doc_number"], [["A"]])

    result = landing_file_sensor(dg.build_sensor_context(resources=sensor_env))

    assert isinstance(result, dg.SkipReason)
    assert (drops / "_quarantine" / "quickbooks" / "invoice.csv").is_file()


def test_the_sensor_and_its_job_load_with_the_ingest_assets():
    defs = dg.Definitions(assets=raw_assets, jobs=[ingest_drops_job],
                          sensors=[landing_file_sensor], resources={"q2c": Q2CSettings()})

    job = defs.resolve_job_def(INGEST_DROPS_JOB_NAME)
    sensor = defs.resolve_sensor_def("landing_file_sensor")

    assert sensor.job_name == INGEST_DROPS_JOB_NAME
    keys = set(job.asset_layer.executable_asset_keys)
    assert raw_asset_key("quickbooks", "invoice") in keys
