"""Supporting documents in the nightly delivery: planned, held, queued and emailed.

The invoices come from a small hand-made warehouse (test_attachments.py), their PDFs are
rendered from the approved content, the documents sit in a folder or in S3 on moto's
loopback server, and the email goes through the outbox to a real SMTP server (aiosmtpd on
127.0.0.1, conftest.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import sqlite3
from email import policy
from email.parser import BytesParser

import pytest
import yaml
from aws_server import aws, aws_server  # noqa: F401 (pytest fixtures)
from pypdf import PdfReader
from test_attachments import AS_OF, CONTENT_DIR, build_warehouse, documents, pdf_bytes

from q2c.attachments import LocalRepository, S3Repository, parse_rules, plan_for_delivery
from q2c.attachments.nightly import HOLD_SUITE
from q2c.content.registry import load_registry
from q2c.delivery.envelope import EMAIL
from q2c.delivery.mail_transport import SmtpTransport
from q2c.delivery.message import MailAttachment, build_invoice_email
from q2c.delivery.outbox import Outbox, document_key
from q2c.delivery.policy import load_policy
from q2c.delivery.portal import PortalChannel, PortalStore
from q2c.documents.render import render_pdf
from q2c.invoice_delivery import build_items, select_due
from q2c.invoice_mail import StoredDocument
from q2c.settings import Settings
from quality.runner import held_invoice_ids

RULES = """
version: 1
rules:
  - id: enterprise-contract
    document: contract
    when: {segment: enterprise}
    path: accounts/{account_id}/contracts/*.pdf
    required: true
  - id: sow
    document: statement_of_work
    path: quotes/{quote_id}/sow.pdf
    email: true
    embed: true
  - id: statement
    document: account_statement
    when: {segment: enterprise}
    email: true
"""


@pytest.fixture
def content():
    return load_registry(CONTENT_DIR)


@pytest.fixture
def night(tmp_path, content):
    """A warehouse where invoices 1003 (a1, enterprise) and 2001 (a2, smb) have PDFs.

    The PDFs are real ones from the document renderer; their layout is tested elsewhere.
    """
    conn = build_warehouse(tmp_path / "warehouse.duckdb")
    conn.execute("update core.dim_accounts set einvoice_format = null")
    settings = Settings(
        home=tmp_path, landing_dir=tmp_path / "landing",
        warehouse_path=tmp_path / "warehouse.duckdb", documents_dir=tmp_path / "documents",
        outbox_dir=tmp_path / "outbox", dagster_home=tmp_path / "dagster", as_of=AS_OF,
        attachments_location=str(tmp_path / "repo"),
    )
    stored = {}
    for invoice_id, doc in documents(conn, "1003", "2001").items():
        html = (f"<html><head><title>{doc.invoice_number}</title></head>"
                f"<body><h1>Invoice {doc.invoice_number}</h1></body></html>")
        path = settings.documents_dir / f"{invoice_id}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render_pdf(html, CONTENT_DIR))
        stored[invoice_id] = StoredDocument(f"doc-{invoice_id}", str(path))
        conn.execute("insert into q2c_ops.document_manifest (document_id, invoice_id, "
                     "invoice_number, path) values (?, ?, ?, ?)",
                     [f"doc-{invoice_id}", invoice_id, doc.invoice_number, str(path)])
    yield conn, settings, stored
    conn.close()


def deliver_tonight(conn, settings, stored, content, run_id, repository):
    """What the nightly outbox step does: select, plan attachments, build and queue."""
    outbox = Outbox(settings.ops_store)
    selection = select_due(conn, held_invoice_ids(conn), outbox.document_keys_known(),
                           load_policy(None), AS_OF, dt.date(2026, 3, 1))
    docs = documents(conn, *[invoice.invoice_id for invoice in selection.due])
    ready = [(invoice, docs[invoice.invoice_id], stored[invoice.invoice_id])
             for invoice in selection.due]
    run = plan_for_delivery(conn, [doc for _, doc, _ in ready], settings, content, run_id,
                            rules=parse_rules(yaml.safe_load(RULES), "rules.yaml"),
                            repository=repository)
    mail = SmtpTransport("127.0.0.1", 1, timeout=1)
    portal = PortalChannel(PortalStore(settings.home / "portal"), settings.portal_base_url, mail)
    items = build_items(ready, {}, content, settings, portal, attachments=run)
    outbox.enqueue(items, run_id)
    return run, items


def holds(conn):
    return conn.execute(
        "select run_id, invoice_id, invoice_number, suite, expectation, reason "
        "from q2c_ops.invoice_holds where suite = ? order by invoice_id", [HOLD_SUITE]
    ).fetchall()


def test_the_email_arrives_with_the_invoice_pdf_and_its_supporting_documents(
    night, content, aws, smtp_server  # noqa: F811
):
    conn, settings, stored = night
    client = aws.client("s3")
    client.create_bucket(Bucket="supporting",
                         CreateBucketConfiguration={"LocationConstraint": aws.region})
    files = {
        "accounts/0015A1/contracts/msa.pdf": pdf_bytes("master services agreement"),
        "quotes/006Q1/sow.pdf": pdf_bytes("statement of work Q1"),
    }
    for key, body in files.items():
        client.put_object(Bucket="supporting", Key=f"q2c/{key}", Body=body)
    repository = S3Repository("supporting", "q2c", endpoint_url=aws.endpoint_url,
                              region=aws.region)

    run, items = deliver_tonight(conn, settings, stored, content, "run-1", repository)
    report = Outbox(settings.ops_store).process(
        {EMAIL: SmtpTransport(smtp_server.host, smtp_server.port, timeout=10)}, "run-1")

    assert run.counts() == {"planned": 2, "held": 0, "attached": 3, "embedded": 1}
    assert report.sent == 2 and holds(conn) == []
    received = {mail.parsed()["X-Q2C-Invoice-Number"]: mail.parsed()
                for mail in smtp_server.messages}
    german = received["1003"]
    parts = [(part.get_filename(), part.get_content_type(), part.get_content())
             for part in german.iter_attachments()]
    statement = run.plans["1003"].items[2]
    assert [(name, kind) for name, kind, _ in parts] == [
        ("1003.pdf", "application/pdf"),
        ("msa.pdf", "application/pdf"),
        ("sow.pdf", "application/pdf"),
        ("account-statement-2026-03-31.pdf", "application/pdf"),
    ]
    assert parts[1][2] == files["accounts/0015A1/contracts/msa.pdf"]
    assert parts[2][2] == files["quotes/006Q1/sow.pdf"]
    assert parts[3][2] == statement.content and statement.content.startswith(b"%PDF-")

    # The invoice PDF sent is the stored one with the SoW embedded, byte for byte.
    invoice_pdf = PdfReader(io.BytesIO(parts[0][2]))
    assert invoice_pdf.attachments == {"sow.pdf": [files["quotes/006Q1/sow.pdf"]]}
    original = PdfReader(stored["1003"].pdf_path)
    assert [page.extract_text() for page in invoice_pdf.pages] == \
        [page.extract_text() for page in original.pages]

    # The small business gets its invoice alone: no rule of its brings a document.
    assert [part.get_filename() for part in received["2001"].iter_attachments()] == \
        ["2001.pdf"]

    # On record: the outbox holds the bytes that were sent and lists every document.
    with sqlite3.connect(settings.ops_store) as store:
        payload, decision = store.execute(
            "select payloads.payload, outbox.decision from outbox_payloads as payloads "
            "join outbox using (document_key) where payloads.channel = 'email' "
            "and outbox.invoice_id = '1003'").fetchone()
        portal_pdf = store.execute(
            "select payload from outbox_payloads where channel = 'portal' and "
            "document_key = ?", [document_key("1003")]).fetchone()[0]
    stored_mail = BytesParser(policy=policy.default).parsebytes(payload)
    assert [p.get_content() for p in stored_mail.iter_attachments()] == [p[2] for p in parts]
    assert [(item["rule"], item["name"], item["sha256"]) for item in
            json.loads(decision)["attachments"]["items"]] == [
        ("enterprise-contract", "msa.pdf",
         hashlib.sha256(files["accounts/0015A1/contracts/msa.pdf"]).hexdigest()),
        ("sow", "sow.pdf", hashlib.sha256(files["quotes/006Q1/sow.pdf"]).hexdigest()),
        ("statement", "account-statement-2026-03-31.pdf", statement.sha256),
    ]
    assert PdfReader(io.BytesIO(portal_pdf)).attachments == \
        {"sow.pdf": [files["quotes/006Q1/sow.pdf"]]}


def test_a_missing_required_contract_holds_the_invoice_until_it_is_filed(
    night, content, tmp_path
):
    conn, settings, stored = night
    repository = LocalRepository(tmp_path / "repo")
    (tmp_path / "repo/quotes/006Q1").mkdir(parents=True)
    (tmp_path / "repo/quotes/006Q1/sow.pdf").write_bytes(pdf_bytes("statement of work Q1"))
    where = tmp_path / "repo" / "accounts/0015A1/contracts/*.pdf"
    reason = (f"attachments: invoice 1003: rule `enterprise-contract` requires the contract, "
              f"which is not there; looked in {where}")

    for night_number in (1, 2):
        run, items = deliver_tonight(conn, settings, stored, content, f"run-{night_number}",
                                     repository)
        # Night 1 queues the small business's invoice; on night 2 it is already queued.
        assert [item.invoice_number for item in items] == (["2001"] if night_number == 1
                                                           else [])
        assert list(run.held) == ["1003"]
        assert holds(conn) == [(f"run-{night_number}", "1003", "1003", "attachments",
                                "enterprise-contract", reason)]
        # A delivery hold: the invoice is still rendered and its e-invoice still built.
        assert "1003" not in held_invoice_ids(conn)
    assert Outbox(settings.ops_store).document_keys_known() == {document_key("2001")}

    contract = pdf_bytes("master services agreement")
    (tmp_path / "repo/accounts/0015A1/contracts").mkdir(parents=True)
    (tmp_path / "repo/accounts/0015A1/contracts/msa.pdf").write_bytes(contract)
    run, items = deliver_tonight(conn, settings, stored, content, "run-3", repository)

    assert [item.invoice_number for item in items] == ["1003"] and holds(conn) == []
    assert [(item.rule_id, item.name) for item in run.plans["1003"].items] == [
        ("enterprise-contract", "msa.pdf"), ("sow", "sow.pdf"),
        ("statement", "account-statement-2026-03-31.pdf")]
    email = BytesParser(policy=policy.default).parsebytes(items[0].plan[0].payload)
    assert [part.get_filename() for part in email.iter_attachments()] == [
        "1003.pdf", "msa.pdf", "sow.pdf", "account-statement-2026-03-31.pdf"]
    assert list(email.iter_attachments())[1].get_content() == contract


def test_a_hostile_account_id_holds_the_invoice_and_no_file_is_read(night, content,
                                                                    tmp_path):
    conn, settings, stored = night
    secret = tmp_path / "etc/contracts/passwd.pdf"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(pdf_bytes("outside the repository"))
    conn.execute("update core.dim_accounts set crm_account_id = '../etc' "
                 "where account_key = 'a1'")
    (tmp_path / "repo").mkdir()

    run, items = deliver_tonight(conn, settings, stored, content, "run-1",
                                 LocalRepository(tmp_path / "repo"))

    assert [item.invoice_number for item in items] == ["2001"]
    [(_, _, _, _, rule, reason)] = holds(conn)
    assert rule == "enterprise-contract"
    assert "'../etc' is not a plain id" in reason and "not looked up" in reason
    assert all(b"outside the repository" not in item.content
               for plan in run.plans.values() for item in plan.items)



def test_the_email_refuses_two_attachments_of_one_name_and_keeps_text_files_exact():
    arguments = dict(
        invoice_number="1003", recipient="ap@beispiel.example", sender="billing@n.example",
        subject="Invoice 1003", html_body="<p>Invoice</p>", text_body="Invoice",
        pdf_bytes=pdf_bytes("invoice"), pdf_filename="1003.pdf",
        message_id_domain="n.example", idempotency_key="k" * 64,
    )
    notes = "Lieferung 1/2, Größe M\r\nzweite Zeile ohne Ende".encode()
    message = build_invoice_email(**arguments, attachments=[
        MailAttachment("notes.txt", notes, "text/plain"),
        MailAttachment("data.csv", b"a;b\n1;2\n", "text/csv")])
    parsed = BytesParser(policy=policy.default).parsebytes(message.as_bytes())

    assert [(part.get_filename(), part.get_payload(decode=True))
            for part in parsed.iter_attachments()][1:] == [
        ("notes.txt", notes), ("data.csv", b"a;b\n1;2\n")]
    same_as_pdf = [MailAttachment("1003.PDF", b"x", "text/plain")]
    twice = [MailAttachment("notes.txt", notes, "text/plain")] * 2
    for attachments, name in ((same_as_pdf, "1003.PDF"), (twice, "notes.txt")):
        with pytest.raises(ValueError, match=f"attachment name '{name}' of invoice 1003"):
            build_invoice_email(**arguments, attachments=attachments)
