"""The whole nightly job, in-process, on generated data and on the shared Fivetran samples.

These tests run the real chain (CSV landing, dbt on DuckDB, Great Expectations, WeasyPrint,
the mail channels) and compare its outputs with values computed here from the input files.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import mailbox
import shutil
import sqlite3
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from io import BytesIO
from pathlib import Path

import dagster as dg
import pytest
from babel import Locale
from babel.numbers import format_currency
from pypdf import PdfReader
from test_bounces import dsn

from q2c import opsdb
from q2c.cli import main as cli_main
from q2c.delivery.policy import AccountDelivery, resolve_channels
from q2c.delivery.policy import load_policy as load_channel_policy
from q2c.demo import generate
from q2c.einvoice.facturx import read_facturx_xml
from q2c.einvoice.validate import validator_for
from q2c.settings import load_settings
from q2c.warehouse import connect
from q2c.x12.ack import parse_997, write_997
from q2c.x12.control import Controls
from q2c.x12.profiles import load_partners
from q2c.x12.validate import validate_x12

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
AS_OF = dt.date(2026, 11, 30)
LOOKBACK_DAYS = 90
DELIVERY_START = AS_OF - dt.timedelta(days=LOOKBACK_DAYS)


def _environment(monkeypatch: pytest.MonkeyPatch, home: Path, landing: Path, as_of: dt.date):
    monkeypatch.setenv("Q2C_HOME", str(home))
    monkeypatch.setenv("Q2C_LANDING_DIR", str(landing))
    monkeypatch.setenv("Q2C_AS_OF", as_of.isoformat())
    monkeypatch.setenv("Q2C_MAIL_CHANNEL", "eml")
    monkeypatch.setenv("Q2C_RENDER_WORKERS", "2")
    monkeypatch.setenv("Q2C_DELIVERY_LOOKBACK_DAYS", str(LOOKBACK_DAYS))
    for name in ("Q2C_WAREHOUSE", "Q2C_DOCUMENTS_DIR", "Q2C_OUTBOX_DIR", "Q2C_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _run():
    from orchestration.run import run_nightly

    return run_nightly(instance=dg.DagsterInstance.ephemeral())


def _materialization_metadata(result, key: list[str]) -> dict:
    events = result.result.asset_materializations_for_node(
        {"documents": "documents__invoice_pdfs", "delivery": "outbox"}[key[0]]
    )
    return {name: value.value for name, value in events[0].metadata.items()}


def _current_invoices(path: Path) -> dict[str, dict]:
    """The invoices of a landed file as the ERP holds them: keyed, latest sync, not deleted."""
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["id"]]
    current: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: r["_fivetran_synced"] or ""):
        current[row["id"]] = row
    return {k: v for k, v in current.items() if v["_fivetran_deleted"].lower() != "true"}


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("generated")
    landing = home / "landing"
    summary = generate(landing, seed=11, accounts=14, as_of=AS_OF)
    _make_a_us_customer_take_x12(landing / "salesforce" / "account.csv")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _environment(monkeypatch, home / "var", landing, AS_OF)
        first = _run()
        outbox_after_first = sorted((home / "var" / "outbox").rglob("*.eml"))
        delivered_after_first = _delivered(home / "var")
        second = _run()
        yield {
            "home": home / "var", "landing": landing, "summary": summary, "first": first,
            "second": second, "outbox_after_first": outbox_after_first,
            "delivered_after_first": delivered_after_first,
        }


def _make_a_us_customer_take_x12(accounts_csv: Path) -> None:
    """The generated US customer asks for X12 810s through the 5010 distributor profile."""
    with accounts_csv.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    us = next(row for row in rows if row["billing_country_code"] == "US")
    us.update(invoice_delivery_channel_c="edi", einvoice_format_c="x12_810",
              x12_partner_c="lakeside-distribution")
    with accounts_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_the_job_succeeds_twice_on_generated_data(generated_run):
    assert generated_run["first"].success, generated_run["first"].summary
    assert generated_run["second"].success, generated_run["second"].summary


def test_every_current_invoice_reaches_the_core_mart(generated_run):
    expected = _current_invoices(generated_run["landing"] / "quickbooks" / "invoice.csv")

    with connect(generated_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        ids = {row[0] for row in conn.sql("select invoice_id from core.fct_invoices").fetchall()}

    assert ids == set(expected)


def test_ar_aging_total_equals_open_erp_balances_by_currency(generated_run):
    invoices = _current_invoices(generated_run["landing"] / "quickbooks" / "invoice.csv")
    expected: dict[str, Decimal] = {}
    for row in invoices.values():
        balance = Decimal(row["balance"] or "0")
        if balance > 0:
            expected[row["currency_id"]] = expected.get(row["currency_id"], Decimal(0)) + balance

    with connect(generated_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        totals = dict(conn.sql(
            "select currency, sum(total_open_amount) from kpi.kpi_ar_aging group by currency"
        ).fetchall())

    assert {c: Decimal(v) for c, v in totals.items()} == expected
    assert expected["EUR"] > 0 and expected["JPY"] > 0


def test_bad_invoices_are_held_back_and_all_others_rendered(generated_run):
    summary = generated_run["summary"]
    bad = {kind: rows[0].invoice_id for kind, rows in summary.bad_rows.items()}
    expected_held = {bad["invalid_currency"], bad["due_before_issue"], bad["total_mismatch"],
                     bad["unparseable_line_amount"]}

    with connect(generated_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        held = {r[0] for r in conn.sql("select invoice_id from q2c_ops.invoice_holds").fetchall()}
        issued = {r[0] for r in conn.sql("select invoice_id from core.fct_invoices").fetchall()}
        rendered = conn.sql(
            "select invoice_id, path from q2c_ops.document_manifest"
        ).fetchall()

    assert held == expected_held
    assert {invoice_id for invoice_id, _ in rendered} == issued - expected_held
    assert all(Path(path).is_file() for _, path in rendered)
    documents = _materialization_metadata(generated_run["first"], ["documents"])
    assert documents["held_back"] == 4
    assert documents["rendered"] == len(issued) - 4
    # A content owner sees in the run which versions the documents used, and how often.
    used = documents["content_used"]
    assert used["template invoice v4"] == used["theme default v3"] == len(issued) - 4
    with connect(generated_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        legal = conn.sql(
            "select count(*) from q2c_ops.document_manifest "
            "where content_selection like '%late_payment%'").fetchone()[0]
    assert legal == sum(n for name, n in used.items() if name.startswith("legal late_payment"))


def test_each_email_due_carries_its_pdf_with_number_and_total(generated_run):
    invoices = _current_invoices(generated_run["landing"] / "quickbooks" / "invoice.csv")
    emails = generated_run["outbox_after_first"]
    assert emails, "the first run wrote no .eml files"

    with connect(generated_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        locales = dict(conn.sql(
            "select i.invoice_number, a.locale from core.fct_invoices i "
            "join core.dim_accounts a using (account_key)"
        ).fetchall())
    for path in emails:
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if message["X-Q2C-Account-Key"]:
            continue  # a portal notice carries a link, not the PDF
        number = message["X-Q2C-Invoice-Number"]
        row = next(r for r in invoices.values() if r["doc_number"] == number)
        attachment = next(message.iter_attachments())
        text = "".join(page.extract_text() for page in PdfReader(
            BytesIO(attachment.get_content())).pages)
        total = format_currency(Decimal(row["total_amount"]), row["currency_id"],
                                locale=locales[number], currency_digits=True)

        assert attachment.get_content_type() == "application/pdf"
        assert number in text
        assert total.replace("\xa0", " ") in text.replace("\xa0", " ")
        assert number in message.get_body(("plain",)).get_content()


def test_every_account_locale_is_one_the_formatter_knows(generated_run):
    with connect(generated_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        locales = {row[0] for row in conn.sql("select locale from core.dim_accounts").fetchall()}

    for locale in locales:
        assert Locale.parse(locale), locale
    assert {"de_DE", "fr_FR", "ja_JP", "en_001"} <= locales


def _due_and_review(generated_run) -> tuple[set[str], set[str]]:
    """Invoice numbers due tonight, and those the default review policy must hold.

    Computed from the landed files: not held by a quality rule, not emailed by the ERP
    already, issued on or after the delivery start, to a customer who did not ask for no
    delivery at all (QuickBooks 'None' and no CRM channel); review when the total is above the
    policy's amount for the currency or the invoice is its customer's first (earliest issue
    date).
    """
    invoices = _current_invoices(generated_run["landing"] / "quickbooks" / "invoice.csv")
    summary = generated_run["summary"]
    held = {rows[0].invoice_id for kind, rows in summary.bad_rows.items()
            if kind in {"invalid_currency", "due_before_issue", "total_mismatch",
                        "unparseable_line_amount"}}
    first = {}
    for row in sorted(invoices.values(), key=lambda r: (r["transaction_date"], r["doc_number"])):
        first.setdefault(row["customer_id"], row["doc_number"])
    limits = {"EUR": "10000.00", "USD": "12000.00", "GBP": "9000.00", "JPY": "1500000",
              "KWD": "3000.000"}
    with connect(generated_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        no_delivery = {row[0] for row in conn.sql(
            "select erp_customer_id from core.dim_accounts where invoice_delivery_channel "
            "is null and delivery_preference = 'none'").fetchall()}
    due, review = set(), set()
    for row in invoices.values():
        if row["id"] in held or row["email_status"] == "EmailSent":
            continue
        if row["customer_id"] in no_delivery:  # QuickBooks 'None': nothing is sent
            continue
        if dt.date.fromisoformat(row["transaction_date"]) < DELIVERY_START:
            continue
        due.add(row["doc_number"])
        limit = limits.get(row["currency_id"])
        if (limit and Decimal(row["total_amount"]) > Decimal(limit)) or (
                first[row["customer_id"]] == row["doc_number"]):
            review.add(row["doc_number"])
    return due, review


def _older_not_emailed(generated_run) -> set[str]:
    invoices = _current_invoices(generated_run["landing"] / "quickbooks" / "invoice.csv")
    return {row["doc_number"] for row in invoices.values()
            if row["email_status"] != "EmailSent"
            and dt.date.fromisoformat(row["transaction_date"]) < DELIVERY_START}


def _delivered(home: Path) -> dict[str, list[str]]:
    """Invoice number -> channels it reached, read from what each channel wrote."""
    found: dict[str, list[str]] = {}
    for path in home.joinpath("outbox").rglob("*.eml"):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if message["X-Q2C-Account-Key"]:
            continue  # a portal notice, counted with the portal
        found.setdefault(str(message["X-Q2C-Invoice-Number"]), []).append("email")
    for path in home.joinpath("edi-outbound").glob("*.json"):
        sidecar = json.loads(path.read_text())
        found.setdefault(sidecar["invoice_number"], []).append("edi")
    for path in home.joinpath("portal").glob("*/index/*.json"):
        found.setdefault(json.loads(path.read_text())["invoice_number"], []).append("portal")
    return found


def test_every_due_invoice_is_delivered_once_or_waits_for_review(generated_run):
    due, review = _due_and_review(generated_run)
    delivered = generated_run["delivered_after_first"]
    with opsdb.connect(generated_run["home"] / "ops.sqlite") as store:
        pending = {row[0] for row in store.execute(
            "select invoice_number from review_queue where status = 'pending'")}

    assert review and due - review, "the generated data should exercise both paths"
    assert _older_not_emailed(generated_run), "and invoices older than the delivery start"
    assert pending == review
    assert set(delivered) == due - review
    assert all(len(channels) == 1 for channels in delivered.values()), delivered


def test_edi_customers_get_a_valid_einvoice_and_the_others_an_email(generated_run):
    """Each invoice reached the first channel of its customer's policy decision."""
    home = generated_run["home"]
    first_channel = _first_channels(generated_run)
    delivered = generated_run["delivered_after_first"]
    assert any(channels == ["edi"] for channels in delivered.values())

    for number, channels in delivered.items():
        assert channels == [first_channel[number]], number

    validator = validator_for(load_settings().einvoice_rules_dir)
    files = sorted(home.joinpath("documents", "einvoices").rglob("*.*"))
    assert files
    for path in files:
        if path.suffix == ".x12":
            assert validate_x12(path.read_text()) == [], path.name
            continue
        if path.suffix == ".xml":
            report = validator.validate_ubl(path.read_bytes(), peppol=True)
        else:
            report = validator.validate_cii(read_facturx_xml(path.read_bytes()))
        assert report.ok, (path.name, report.summary())


def test_a_rerun_sends_nothing_twice_and_renders_nothing_again(generated_run):
    home = generated_run["home"]
    assert _delivered(home) == generated_run["delivered_after_first"]
    delivery = _materialization_metadata(generated_run["second"], ["delivery"])
    documents = _materialization_metadata(generated_run["second"], ["documents"])
    assert delivery["sent"] == 0 and delivery["queued_now"] == 0
    assert documents["rendered"] == 0
    with opsdb.connect(home / "ops.sqlite") as store:
        statuses = store.execute("select status, count(*) from outbox group by 1").fetchall()
    assert [tuple(row) for row in statuses] == [
        ("sent", len(generated_run["delivered_after_first"]))]


def test_an_invoice_waiting_for_review_goes_out_over_smtp_once_after_approval(
    generated_run, smtp_server, monkeypatch
):
    from assets.delivery import outbox, review_queue
    from orchestration.resources import Q2CSettings

    _environment(monkeypatch, generated_run["home"], generated_run["landing"], AS_OF)
    monkeypatch.setenv("Q2C_MAIL_CHANNEL", "smtp")
    monkeypatch.setenv("Q2C_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("Q2C_SMTP_PORT", str(smtp_server.port))
    _, review = _due_and_review(generated_run)
    first_channel = _first_channels(generated_run)
    emailed = sorted(number for number in review if first_channel[number] == "email")
    assert emailed, "the generated data should have an email customer waiting for review"

    result = dg.materialize([review_queue, outbox], resources={"q2c": Q2CSettings()})
    assert result.success and smtp_server.messages == []

    assert cli_main(["review", "approve", emailed[0], "--by", "controller"]) == 0
    for _ in range(2):
        result = dg.materialize([review_queue, outbox], resources={"q2c": Q2CSettings()})
        assert result.success

    numbers = [m.parsed()["X-Q2C-Invoice-Number"] for m in smtp_server.messages]
    assert numbers == [emailed[0]]
    with opsdb.connect(generated_run["home"] / "ops.sqlite") as store:
        row = store.execute("select status, sent_channel from outbox where invoice_number = ?",
                            [emailed[0]]).fetchone()
    assert (row["status"], row["sent_channel"]) == ("sent", "email")


def test_an_invoice_rejected_after_it_was_queued_is_cancelled_not_sent(
    generated_run, tmp_path, monkeypatch
):
    from assets.delivery import outbox, review_queue
    from orchestration.resources import Q2CSettings

    home = _copy_of_the_run(generated_run, tmp_path, monkeypatch)
    monkeypatch.setenv("Q2C_MAIL_CHANNEL", "smtp")  # a closed port: the send is deferred
    monkeypatch.setenv("Q2C_SMTP_PORT", "9")
    first_channel = _first_channels(generated_run)
    with opsdb.connect(home / "ops.sqlite") as store:  # other tests may have approved some
        pending = [row[0] for row in store.execute(
            "select invoice_number from review_queue where status = 'pending' order by 1")]
    number = next(n for n in pending if first_channel[n] == "email")

    assert cli_main(["review", "approve", number, "--by", "controller"]) == 0
    assert dg.materialize([review_queue, outbox], resources={"q2c": Q2CSettings()}).success
    assert _outbox_status(home, number) == "failed_retry"

    assert cli_main(["review", "reopen", number, "--reason", "wrong PO", "--by", "c"]) == 0
    assert cli_main(["review", "reject", number, "--reason", "wrong PO", "--by", "c"]) == 0
    assert dg.materialize([review_queue, outbox], resources={"q2c": Q2CSettings()}).success

    assert _outbox_status(home, number) == "cancelled"
    with opsdb.connect(home / "ops.sqlite") as store:
        events = [row[0] for row in store.execute(
            "select event from delivery_events where invoice_number = ? order by seq",
            [number])]
    assert "sent" not in events and events[-1] == "cancelled"


def _outbox_status(home: Path, number: str) -> str:
    with opsdb.connect(home / "ops.sqlite") as store:
        return store.execute("select status from outbox where invoice_number = ?",
                             [number]).fetchone()[0]


def _first_channels(generated_run) -> dict[str, str]:
    """Invoice number -> the first channel of its customer's policy decision."""
    with connect(generated_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        cursor = conn.execute(
            "select i.invoice_number, a.* from core.fct_invoices i "
            "join core.dim_accounts a using (account_key)"
        )
        names = [column[0] for column in cursor.description]
        rows = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    policy = load_channel_policy()
    firsts = {}
    for number, row in rows.items():
        channels = resolve_channels(AccountDelivery.from_row(row), policy).channels
        firsts[number] = channels[0] if channels else "none"
    return firsts


def _copy_of_the_run(generated_run, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the generated run's home, so a test can change it freely."""
    home = tmp_path / "var"
    shutil.copytree(generated_run["home"], home)
    _environment(monkeypatch, home, generated_run["landing"], AS_OF)
    return home


def test_a_bounced_invoice_email_fails_over_to_the_portal_and_the_trail_shows_it(
    generated_run, tmp_path, monkeypatch
):
    from assets.delivery import outbox, review_queue
    from orchestration.resources import Q2CSettings

    home = _copy_of_the_run(generated_run, tmp_path, monkeypatch)
    sent = [BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            for path in sorted(home.joinpath("outbox").rglob("*.eml"))]
    original = next(m for m in sent if not m["X-Q2C-Account-Key"])
    number = str(original["X-Q2C-Invoice-Number"])
    maildir = mailbox.Maildir(tmp_path / "bounces", create=True)
    maildir.add(dsn(original, action="failed", status="5.1.1", recipient=str(original["To"]),
                    diagnostic="550 5.1.1 <ap@customer.example>: Recipient address rejected"))
    monkeypatch.setenv("Q2C_BOUNCE_MAILDIR", str(tmp_path / "bounces"))

    result = dg.materialize([review_queue, outbox], resources={"q2c": Q2CSettings()})

    assert result.success
    with opsdb.connect(home / "ops.sqlite") as store:
        trail = [(row["event"], row["channel"]) for row in store.execute(
            "select event, channel from delivery_events where invoice_number = ? "
            "order by seq", [number])]
        row = store.execute("select status, sent_channel from outbox where invoice_number = ?",
                            [number]).fetchone()
    after_bounce = trail[trail.index(("bounced", "email")):]
    assert [step for step in after_bounce if step[0] != "claimed"] == [
        ("bounced", "email"), ("failed_over", "email"), ("sent", "portal")], trail
    assert (row["status"], row["sent_channel"]) == ("sent", "portal")
    assert number in {json.loads(path.read_text())["invoice_number"]
                      for path in home.joinpath("portal").glob("*/index/*.json")}
    assert list(tmp_path.joinpath("bounces", "new").iterdir()) == []


def test_an_einvoice_that_cannot_comply_is_held_with_the_rule_named(
    generated_run, tmp_path, monkeypatch
):
    from assets.documents import einvoices
    from orchestration.resources import Q2CSettings

    home = _copy_of_the_run(generated_run, tmp_path, monkeypatch)
    with connect(home / "warehouse.duckdb") as conn:
        account, invoice_ids = conn.sql(
            "select a.account_key, list(i.invoice_id order by i.invoice_id) "
            "from core.dim_accounts a join core.fct_invoices i using (account_key) "
            "where a.invoice_delivery_channel = 'edi' and a.einvoice_format = 'peppol_ubl' "
            "group by 1 order by 1 limit 1"
        ).fetchone()
        # A buyer VAT id without its ISO 3166 country prefix breaks BR-CO-09.
        conn.execute("update core.dim_accounts set vat_id = '123456789' "
                     "where account_key = ?", [account])

    result = dg.materialize([einvoices], resources={"q2c": Q2CSettings()})

    assert result.success
    with connect(home / "warehouse.duckdb", read_only=True) as conn:
        holds = conn.sql(
            "select invoice_id, expectation, reason from q2c_ops.invoice_holds "
            "where suite = 'einvoice' order by 1").fetchall()
    held_here = {invoice_id for invoice_id, _, _ in holds}
    assert set(invoice_ids) - _held_by_quality(generated_run) == held_here
    assert all("BR-CO-09" in rule and "BR-CO-09" in reason for _, rule, reason in holds)


def _edi_account(conn, fmt: str = "peppol_ubl") -> tuple[str, list[str]]:
    return conn.sql(
        "select a.account_key, list(i.invoice_id order by i.invoice_id) "
        "from core.dim_accounts a join core.fct_invoices i using (account_key) "
        f"where a.invoice_delivery_channel = 'edi' and a.einvoice_format = '{fmt}' "
        "group by 1 order by 1 limit 1"
    ).fetchone()


def test_a_control_character_in_one_customer_holds_only_that_customers_einvoices(
    generated_run, tmp_path, monkeypatch
):
    from assets.documents import einvoices
    from orchestration.resources import Q2CSettings

    home = _copy_of_the_run(generated_run, tmp_path, monkeypatch)
    with connect(home / "warehouse.duckdb") as conn:
        account, invoice_ids = _edi_account(conn)
        everyone = {row[0] for row in conn.sql(
            "select i.invoice_id from core.fct_invoices i join core.dim_accounts a "
            "using (account_key) where a.invoice_delivery_channel = 'edi'").fetchall()}
        conn.execute("update core.dim_accounts set account_name = 'Hofmann' || chr(11) || "
                     "'Elektronik AG' where account_key = ?", [account])
    expected = set(invoice_ids) - _held_by_quality(generated_run)

    for _ in range(2):  # the hold must survive the next night, not only the first
        result = dg.materialize([einvoices], resources={"q2c": Q2CSettings()})
        assert result.success
        with connect(home / "warehouse.duckdb", read_only=True) as conn:
            holds = dict(conn.sql("select invoice_id, expectation from q2c_ops.invoice_holds "
                                  "where suite = 'einvoice'").fetchall())
        assert expected and set(holds) == expected
        assert set(holds.values()) == {"q2c-einvoice"}
    assert everyone - set(invoice_ids), "other e-invoice customers must not be held"


def test_without_the_rules_folder_edi_invoices_are_held_and_nothing_goes_by_edi(
    generated_run, tmp_path, monkeypatch
):
    from assets.documents import einvoices
    from orchestration.resources import Q2CSettings

    home = _copy_of_the_run(generated_run, tmp_path, monkeypatch)
    monkeypatch.setenv("Q2C_EINVOICE_RULES", str(tmp_path / "no-rules-here"))

    result = dg.materialize([einvoices], resources={"q2c": Q2CSettings()})

    assert result.success
    with connect(home / "warehouse.duckdb", read_only=True) as conn:
        holds = conn.sql("select distinct expectation, reason from q2c_ops.invoice_holds "
                         "where suite = 'einvoice'").fetchall()
        edi = {row[0] for row in conn.sql(
            "select i.invoice_id from core.fct_invoices i join core.dim_accounts a "
            "using (account_key) where a.invoice_delivery_channel = 'edi'").fetchall()}
        x12 = {row[0] for row in conn.sql(
            "select i.invoice_id from core.fct_invoices i join core.dim_accounts a "
            "using (account_key) where a.einvoice_format = 'x12_810'").fetchall()}
    assert holds and {rule for rule, _ in holds} == {"rules-missing"}
    assert all("Q2C_EINVOICE_RULES" in reason for _, reason in holds)
    with connect(home / "warehouse.duckdb", read_only=True) as conn:
        held = {row[0] for row in conn.sql("select invoice_id from q2c_ops.invoice_holds "
                                           "where suite = 'einvoice'").fetchall()}
    assert x12, "the generated data has an X12 customer, which needs no EN 16931 rules"
    assert held == edi - x12 - _held_by_quality(generated_run)


def test_a_rewritten_audit_trail_fails_its_check_even_with_recomputed_hashes(
    generated_run, tmp_path, monkeypatch
):
    from q2c.delivery.audit import GENESIS_HASH, event_hash

    home = _copy_of_the_run(generated_run, tmp_path, monkeypatch)
    store = sqlite3.connect(home / "ops.sqlite")
    store.row_factory = sqlite3.Row
    store.execute("drop trigger delivery_events_no_update")
    store.execute("drop trigger delivery_events_no_delete")
    rows = [dict(row) for row in store.execute("select * from delivery_events order by seq")]
    prev = GENESIS_HASH
    for row in rows:
        if row["event"] == "sent":
            row["detail"] = "rewritten"
        fields = {k: v for k, v in row.items() if k not in ("prev_hash", "hash")}
        row["prev_hash"], row["hash"] = prev, event_hash(prev, fields)
        prev = row["hash"]
        store.execute("update delivery_events set detail = ?, prev_hash = ?, hash = ? "
                      "where seq = ?", [row["detail"], row["prev_hash"], row["hash"],
                                        row["seq"]])
    store.commit()
    store.close()

    assert_delivery_stops_and_sends_nothing(home)


def test_a_lost_operational_store_stops_delivery_instead_of_sending_again(
    generated_run, tmp_path, monkeypatch
):
    home = _copy_of_the_run(generated_run, tmp_path, monkeypatch)
    (home / "ops.sqlite").rename(home / "ops.sqlite.lost")

    assert_delivery_stops_and_sends_nothing(home)


def assert_delivery_stops_and_sends_nothing(home: Path) -> None:
    from assets.delivery import outbox, review_queue
    from orchestration.resources import Q2CSettings

    before = sorted(home.joinpath("outbox").rglob("*.eml"))
    result = dg.materialize([review_queue, outbox], resources={"q2c": Q2CSettings()},
                            raise_on_error=False)

    failures = [event for event in result.all_events if event.is_step_failure]
    assert not result.success and len(failures) == 1
    assert "delivery stopped, nothing was sent" in str(failures[0].event_specific_data)
    assert sorted(home.joinpath("outbox").rglob("*.eml")) == before


def test_a_policy_rule_that_puts_edi_first_gets_einvoices_built(
    generated_run, tmp_path, monkeypatch
):
    """A Belgian customer with a Peppol id but no CRM channel: the BE rule puts EDI first."""
    from assets.documents import einvoices
    from orchestration.resources import Q2CSettings

    home = _copy_of_the_run(generated_run, tmp_path, monkeypatch)
    with connect(home / "warehouse.duckdb") as conn:
        account, invoice_ids = conn.sql(
            "select a.account_key, list(i.invoice_id) from core.dim_accounts a "
            "join core.fct_invoices i using (account_key) "
            "where a.invoice_delivery_channel is null group by 1 order by 1 limit 1"
        ).fetchone()
        conn.execute("update core.dim_accounts set country_code = 'BE', "
                     "peppol_participant_id = '0208:0123456749' where account_key = ?",
                     [account])

    result = dg.materialize([einvoices], resources={"q2c": Q2CSettings()})

    assert result.success
    with connect(home / "warehouse.duckdb", read_only=True) as conn:
        built = {row[0] for row in conn.sql(
            "select invoice_id from q2c_ops.einvoice_manifest").fetchall()}
        held = {row[0] for row in conn.sql(
            "select invoice_id from q2c_ops.invoice_holds where suite = 'einvoice'"
        ).fetchall()}
    expected = set(invoice_ids) - _held_by_quality(generated_run)
    assert expected and expected <= built | held


def _held_by_quality(generated_run) -> set[str]:
    return {rows[0].invoice_id for kind, rows in generated_run["summary"].bad_rows.items()
            if kind in {"invalid_currency", "due_before_issue", "total_mismatch",
                        "unparseable_line_amount"}}


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("shared")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _environment(monkeypatch, home / "var", SHARED_DATA, dt.date(2021, 3, 1))
        yield {"home": home / "var", "result": _run()}


def test_the_shared_fivetran_samples_flow_through_with_a_report(shared_run):
    result = shared_run["result"]
    assert result.success, result.summary

    with connect(shared_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        missing = conn.sql(
            "select source || '.' || table_name from q2c_ops.ingest_report "
            "where status = 'missing_file' order by 1"
        ).fetchall()
        held = {r[0] for r in conn.sql("select invoice_id from q2c_ops.invoice_holds").fetchall()}
        outbox = conn.sql("select status, count(*) from q2c_ops.outbox group by 1").fetchall()
        mart = conn.sql("select count(*) from core.fct_invoices").fetchone()[0]

    assert missing == [("quickbooks.term",), ("salesforce.case",)]
    assert {"40113", "40115", "50001"} <= held
    assert mart == 5
    assert "raw_quickbooks.term" in result.summary and "missing_file" in result.summary
    assert "Invoices held back" in result.summary and "40113" in result.summary
    # Every live shared invoice is held or has no known customer: nothing may go out.
    assert outbox == []
    assert "invoice 40114: core.fct_invoices.account_key" in result.summary
    assert "0 PDFs rendered this run" in result.summary


def test_a_second_run_on_the_same_home_stops_with_a_clear_message(tmp_path, monkeypatch):
    from orchestration.run import RunInProgressError, _exclusive_run

    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    with _exclusive_run(tmp_path):
        with pytest.raises(RunInProgressError, match="another q2c run is in progress"):
            _run()


def test_a_missing_tax_line_export_stops_the_night_before_any_invoice_leaves(tmp_path,
                                                                             monkeypatch):
    """Regression: an unreadable tax-line file once let invoices go out without their VAT."""
    landing = tmp_path / "landing"
    generate(landing, seed=5, accounts=3, as_of=AS_OF)
    (landing / "quickbooks" / "invoice_tax_line.csv").unlink()
    _environment(monkeypatch, tmp_path / "var", landing, AS_OF)

    result = _run()

    assert not result.success
    assert "raw_quickbooks.invoice_tax_line: no file invoice_tax_line.csv" in result.summary
    assert "the night stops here" in result.summary
    assert not (tmp_path / "var" / "documents").exists()
    assert not (tmp_path / "var" / "outbox").exists()


def _x12_invoices(home: Path) -> dict[str, tuple[str, Decimal, Path]]:
    """Invoice number -> (the customer's partner, the invoice total, its stored 810)."""
    with connect(home / "warehouse.duckdb", read_only=True) as conn:
        rows = conn.sql(
            "select i.invoice_number, a.x12_partner, i.total_amount, m.path "
            "from core.fct_invoices i join core.dim_accounts a using (account_key) "
            "join q2c_ops.einvoice_manifest m using (invoice_id) "
            "where a.einvoice_format = 'x12_810'").fetchall()
    return {number: (partner, Decimal(str(total)), Path(path))
            for number, partner, total, path in rows}


def _segments(text: str) -> list[list[str]]:
    element, terminator = text[3], text[105]
    return [segment.strip().split(element) for segment in text.split(terminator)
            if segment.strip()]


def test_x12_customers_get_an_810_their_trading_partner_can_read(generated_run):
    """Each 810 is addressed to its partner, names its invoice and totals it to the cent."""
    home = generated_run["home"]
    partners = load_partners()
    invoices = _x12_invoices(home)
    assert invoices, "the generated data has an X12 customer with invoices"

    for number, (partner_name, total, path) in invoices.items():
        partner = partners[partner_name]
        text = path.read_text()
        segments = _segments(text)
        by_id = {segment[0]: segment for segment in segments}
        assert path.suffix == ".x12"
        assert validate_x12(text) == []
        assert by_id["ISA"][8].strip() == partner.receiver_id
        assert by_id["ISA"][12] == partner.isa_version
        assert by_id["GS"][8] == partner.gs_version
        assert by_id["BIG"][2] == number
        assert Decimal(by_id["TDS"][1]) == (total * 100).quantize(Decimal(1))
        assert int(by_id["SE"][1]) == len(segments) - 4  # ISA, GS, GE and IEA are outside


def test_a_partner_rejecting_an_810_fails_it_over_to_email_and_the_trail_shows_it(
    generated_run, tmp_path, monkeypatch
):
    from assets.delivery import outbox, review_queue
    from orchestration.resources import Q2CSettings

    home = _copy_of_the_run(generated_run, tmp_path, monkeypatch)
    # The ERP emailed the X12 customer's invoices itself; let it ask q2c to send the newest.
    number, (_, _, path) = max(_x12_invoices(home).items())
    with connect(home / "warehouse.duckdb") as conn:
        conn.execute("update core.fct_invoices set erp_email_status = 'NeedToSend' "
                     "where invoice_number = ?", [number])
    nightly = [review_queue, outbox]
    assert dg.materialize(nightly, resources={"q2c": Q2CSettings()}).success
    with opsdb.connect(home / "ops.sqlite") as store:
        queued = store.execute("select 1 from outbox where invoice_number = ?",
                               [number]).fetchone()
    if queued is None:  # waiting for review: a controller approves it
        assert cli_main(["review", "approve", number, "--by", "controller"]) == 0
        assert dg.materialize(nightly, resources={"q2c": Q2CSettings()}).success
    assert _delivered(home)[number] == ["edi"]

    rejection = write_997(path.read_text(), "R", controls=Controls(isa=7, gs=7, st=1),
                          created_at=dt.datetime(2026, 12, 1, 6, 30))
    assert parse_997(rejection)[0].status == "R"
    inbound = home / "edi" / "inbound"
    inbound.joinpath("997-rejected.x12").write_text(rejection)

    result = dg.materialize(nightly, resources={"q2c": Q2CSettings()})

    assert result.success
    with opsdb.connect(home / "ops.sqlite") as store:
        trail = [(row["event"], row["channel"]) for row in store.execute(
            "select event, channel from delivery_events where invoice_number = ? "
            "order by seq", [number])]
        row = store.execute("select status, sent_channel from outbox where invoice_number = ?",
                            [number]).fetchone()
    after = [step for step in trail[trail.index(("ack_rejected", "edi")):]
             if step[0] != "claimed"]
    assert after == [("ack_rejected", "edi"), ("bounced", "edi"), ("failed_over", "edi"),
                     ("sent", "email")], trail
    assert (row["status"], row["sent_channel"]) == ("sent", "email")
    assert _delivered(home)[number] == ["email", "edi"]
    assert list(inbound.glob("*.x12")) == []  # read once, moved to processed/
