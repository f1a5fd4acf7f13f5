"""Supporting documents: rules, the folder and S3 repositories, path safety, planning, the
account statement and embedding in the PDF.

The S3 tests run against moto's S3-compatible server on 127.0.0.1 (aws_server.py). The
delivery of the planned documents by email is in test_attachment_delivery.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml
from aws_server import aws, aws_server  # noqa: F401 (pytest fixtures)
from pypdf import PdfReader, PdfWriter

from q2c.attachments import (
    DEFAULT_RULES_FILE,
    AttachmentRulesError,
    InvoiceFacts,
    LocalRepository,
    MissingIdError,
    S3Repository,
    UnsafeIdError,
    load_invoice_facts,
    load_rules,
    parse_rules,
    plan_attachments,
    safe_id,
)
from q2c.attachments.embed import EmbedError, embed_files
from q2c.attachments.layout import expand
from q2c.attachments.statement import (
    WarehouseStatementSource,
    load_account_statement,
    render_statement_pdf,
)
from q2c.content.registry import load_registry
from q2c.documents.load import load_invoice_batch
from q2c.documents.render import render_pdf
from q2c.money import Money
from q2c.settings import Seller, load_settings
from q2c.warehouse import ensure_ops_tables

CONTENT_DIR = Path(__file__).resolve().parents[1] / "content"
AS_OF = dt.date(2026, 3, 31)

WAREHOUSE_DDL = """
create schema core;
create table core.dim_accounts (
    account_key varchar, crm_account_id varchar, erp_customer_id varchar,
    match_method varchar, account_name varchar, parent_account_key varchar,
    segment varchar, country_code varchar, language varchar, locale varchar,
    currency varchar, billing_email varchar, billing_contact_name varchar,
    billing_street varchar, billing_city varchar, billing_postal_code varchar,
    billing_region varchar, billing_country_code varchar, vat_id varchar,
    delivery_preference varchar, invoice_delivery_channel varchar, einvoice_format varchar,
    peppol_participant_id varchar, x12_partner varchar, email_consent boolean,
    payment_term_days integer, source_systems varchar
);
create table core.fct_invoices (
    invoice_key varchar, invoice_id varchar, source_system varchar, invoice_number varchar,
    account_key varchar, erp_customer_id varchar, crm_opportunity_id varchar,
    issue_date date, due_date date, currency varchar, currency_minor_units integer,
    subtotal_amount decimal(20,4), discount_amount decimal(20,4), tax_amount decimal(20,4),
    total_amount decimal(20,4), paid_amount decimal(20,4), credited_amount decimal(20,4),
    balance_amount decimal(20,4), computed_balance_amount decimal(20,4),
    exchange_rate decimal(20,8), total_amount_home decimal(20,4), status varchar,
    is_disputed boolean, days_overdue integer, billing_email varchar,
    erp_email_status varchar, customer_memo varchar, created_at timestamp,
    updated_at timestamp
);
create table core.fct_invoice_lines (
    invoice_line_key varchar, invoice_key varchar, invoice_id varchar, line_index integer,
    line_type varchar, item_id varchar, item_name varchar, description varchar,
    quantity decimal(20,4), unit_price decimal(20,4), amount decimal(20,4),
    tax_code varchar, currency varchar
);
create table core.fct_invoice_tax_lines (
    invoice_key varchar, invoice_id varchar, line_index integer, tax_rate_id varchar,
    tax_percent decimal(20,4), taxable_amount decimal(20,4), tax_amount decimal(20,4),
    currency varchar
);
create table core.fct_credit_notes (
    credit_note_key varchar, credit_memo_id varchar, credit_note_number varchar,
    account_key varchar, issue_date date, currency varchar, total_amount decimal(20,4),
    tax_amount decimal(20,4), remaining_credit decimal(20,4)
);
"""

# a1: a German enterprise customer with CRM id 0015A1 and ERP id 58; a2: a US small business
# known to the ERP only (customer 77). Invoice 1003 bills opportunity 006Q1.
ACCOUNTS = """
insert into core.dim_accounts (account_key, crm_account_id, erp_customer_id, account_name,
    segment, country_code, language, locale, currency, billing_email, billing_street,
    billing_city, billing_postal_code, billing_country_code, vat_id, delivery_preference,
    einvoice_format, email_consent, payment_term_days) values
('a1', '0015A1', '58', 'Beispiel GmbH', 'enterprise', 'DE', 'de', 'de_DE', 'EUR',
 'rechnung@beispiel.example', 'Hauptstraße 1', 'Berlin', '10115', 'DE', 'DE123456789',
 'email', 'facturx', true, 14),
('a2', null, '77', 'Acme Corp', 'smb', 'US', 'en', 'en_US', 'USD', 'ap@acme.example',
 '1 Market St', 'San Francisco', '94105', 'US', null, 'email', null, true, 30)
"""

# As of 2026-03-31, account a1 owes (hand-counted):
#   EUR 1001 due 2026-01-15, open 1000.00, 75 days late   -> 61-90
#   EUR 1002 due 2026-02-20, open  300.00 (500 - 200 paid), 39 days -> 31-60
#   EUR 1003 due 2026-04-09, open  119.00 (no ERP balance: computed) -> not yet due
#   EUR 1007 due 2026-03-20, open   80.50, 11 days        -> 1-30
#   USD 1006 due 2025-11-30, open  250.00, 121 days       -> over 90
#   KWD 1008 due 2026-03-31, open   12.345, 0 days        -> not yet due
# 1004 is paid, 1005 is issued after the statement date, 2001 is another account's.
# EUR credit note CN-1 has 50.00 unapplied, CN-2 none.
# EUR: open 1499.50, credit 50.00, balance 1449.50; USD 250.00; KWD 12.345.
INVOICES = """
insert into core.fct_invoices (invoice_id, invoice_number, account_key, crm_opportunity_id,
    issue_date, due_date, currency, subtotal_amount, discount_amount, tax_amount,
    total_amount, paid_amount, credited_amount, balance_amount, computed_balance_amount,
    billing_email) values
('1001', '1001', 'a1', null,    '2026-01-01', '2026-01-15', 'EUR', 1000, 0, 0, 1000, 0, 0,
 1000, 1000, null),
('1002', '1002', 'a1', null,    '2026-02-01', '2026-02-20', 'EUR', 500, 0, 0, 500, 200, 0,
 300, 300, null),
('1003', '1003', 'a1', '006Q1', '2026-03-10', '2026-04-09', 'EUR', 100, 0, 19, 119, 0, 0,
 null, 119, null),
('1004', '1004', 'a1', null,    '2026-02-10', '2026-02-24', 'EUR', 70, 0, 0, 70, 70, 0,
 0, 0, null),
('1005', '1005', 'a1', null,    '2026-04-02', '2026-04-16', 'EUR', 90, 0, 0, 90, 0, 0,
 90, 90, null),
('1006', '1006', 'a1', null,    '2025-11-01', '2025-11-30', 'USD', 250, 0, 0, 250, 0, 0,
 250, 250, null),
('1007', '1007', 'a1', null,    '2026-03-05', '2026-03-20', 'EUR', 80.5, 0, 0, 80.5, 0, 0,
 80.5, 80.5, null),
('1008', '1008', 'a1', null,    '2026-03-17', '2026-03-31', 'KWD', 12.345, 0, 0, 12.345, 0,
 0, 12.345, 12.345, null),
('2001', '2001', 'a2', '006Q2', '2026-03-12', '2026-04-11', 'USD', 40, 0, 0, 40, 0, 0,
 40, 40, null)
"""

CREDIT_NOTES = """
insert into core.fct_credit_notes (credit_memo_id, credit_note_number, account_key,
    issue_date, currency, total_amount, tax_amount, remaining_credit) values
('c1', 'CN-1', 'a1', '2026-03-01', 'EUR', 80, 0, 50),
('c2', 'CN-2', 'a1', '2026-03-02', 'EUR', 30, 0, 0)
"""

RULES = """
version: 1
rules:
  - id: enterprise-contract
    document: contract
    when: {segment: enterprise, country: [DE, AT]}
    path: accounts/{account_id}/contracts/*.pdf
    required: true
  - id: sow
    document: statement_of_work
    path: quotes/{quote_id}/sow.pdf
    embed: true
  - id: facturx-pod
    document: proof_of_delivery
    when: {attribute.einvoice_format: FacturX}
    path: invoices/{invoice_id}/proof-of-delivery.pdf
  - id: smb-terms
    document: other
    when: {segment: smb}
    path: accounts/{account_id}/terms.pdf
    required: true
"""


def pdf_bytes(text: str) -> bytes:
    """A real one-page PDF whose bytes differ by `text`."""
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_metadata({"/Title": text})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def build_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(path))
    conn.execute(WAREHOUSE_DDL)
    conn.execute(ACCOUNTS)
    conn.execute(INVOICES)
    conn.execute(CREDIT_NOTES)
    ensure_ops_tables(conn)
    return conn


@pytest.fixture
def warehouse(tmp_path):
    conn = build_warehouse(tmp_path / "warehouse.duckdb")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def content():
    return load_registry(CONTENT_DIR)


def documents(conn, *ids):
    batch = load_invoice_batch(conn, list(ids), Seller())
    assert not batch.rejected
    return {doc.invoice_id: doc for doc in batch.documents}


def file_tree(root: Path) -> dict[str, bytes]:
    """The demo repository: contracts of a1 (CRM id 0015A1), the SoW of quote 006Q1."""
    files = {
        "accounts/0015A1/contracts/msa.pdf": pdf_bytes("master services agreement"),
        "accounts/0015A1/contracts/Order-Form-2026.PDF": pdf_bytes("order form 2026"),
        "accounts/0015A1/contracts/.draft.pdf": pdf_bytes("hidden draft"),
        "accounts/0015A1/contracts/notes.txt": b"not a contract",
        "quotes/006Q1/sow.pdf": pdf_bytes("statement of work Q1"),
        "invoices/1003/proof-of-delivery.pdf": pdf_bytes("signed delivery note"),
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return files


# -- rules ------------------------------------------------------------------------------


def test_the_shipped_rules_are_all_optional_and_use_the_documented_layout():
    rules = load_rules()

    assert rules.source == str(DEFAULT_RULES_FILE)
    assert [(r.id, r.document, r.path, r.required) for r in rules.rules] == [
        ("contract", "contract", "accounts/{account_id}/contracts/*.pdf", False),
        ("statement-of-work", "statement_of_work", "quotes/{quote_id}/sow.pdf", False),
        ("proof-of-delivery", "proof_of_delivery", "orders/{order_id}/proof-of-delivery.pdf",
         False),
        ("account-statement", "account_statement", None, False),
    ]
    assert rules.rules[1].embed and rules.rules[1].max_bytes == 5 * 1024 * 1024


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "red"}, "rule `r1`: unknown keys colour"),
    ({"document": "invoice"}, "`document` 'invoice' must be one of"),
    ({"path": "../outside/{account_id}.pdf"}, "without '..'"),
    ({"path": "/etc/{account_id}.pdf"}, "must be relative"),
    ({"path": "accounts/{account}/x.pdf"}, "placeholder {account}"),
    ({"path": "accounts/*/x.pdf"}, "in the file name only"),
    ({"path": "accounts/{account_id!r}/x.pdf"}, "placeholder {account_id}"),
    ({"email": False, "embed": False}, "set `email` or `embed`"),
    ({"max_size": "lots"}, "`max_size` 'lots'"),
    ({"max_size": 1.5}, "rule `r1`: `max_size` 1.5 must be a size such as"),
    ({"max_size": "0.3 B"}, "rule `r1`: `max_size` '0.3 B' must be"),
    ({"id": 5}, "rules.yaml, rule 1: `id` 5 must be text"),
    ({"id": True}, "rules.yaml, rule 1: `id` True must be text"),
    ({"required": "yes"}, "`required` must be true or false"),
    ({"when": {"segmnet": "smb"}}, "`when` key `segmnet`"),
    ({"document": "account_statement"}, "remove `path`"),
])
def test_a_rules_file_with_a_mistake_is_refused_naming_the_rule_and_field(change, message):
    rule = {"id": "r1", "document": "contract", "path": "accounts/{account_id}/c.pdf", **change}

    with pytest.raises(AttachmentRulesError, match=re.escape(message)):
        parse_rules({"version": 1, "rules": [rule]}, "rules.yaml")


@pytest.mark.parametrize("version", [True, 1.0, "1", 2])
def test_a_rules_file_version_other_than_the_integer_1_is_refused(version):
    rule = {"id": "r1", "document": "contract", "path": "accounts/{account_id}/c.pdf"}

    with pytest.raises(AttachmentRulesError,
                       match=re.escape(f"rules.yaml: `version` must be 1, not {version!r}")):
        parse_rules({"version": version, "rules": [rule]}, "rules.yaml")


def test_a_max_size_is_a_whole_number_of_bytes():
    rule = {"id": "r1", "document": "contract", "path": "accounts/{account_id}/c.pdf"}

    sizes = [parse_rules({"version": 1, "rules": [{**rule, "max_size": size}]}, "r")
             .rules[0].max_bytes for size in ("1.5 MB", "0.5 KB", 700, "2 gb")]

    assert sizes == [1572864, 512, 700, 2147483648]


def test_a_when_attribute_that_is_not_an_account_column_is_refused(warehouse):
    rules = parse_rules(yaml.safe_load(
        "version: 1\nrules:\n  - {id: x, document: contract, path: 'a/{account_id}/c.pdf',"
        " when: {attribute.einvoice_fromat: facturx}}\n"), "rules.yaml")
    columns = load_invoice_facts(warehouse, ["1003"])["1003"].attributes.keys()

    with pytest.raises(AttachmentRulesError, match="einvoice_fromat` names no column"):
        rules.check_attributes(columns)


# -- ids and the layout -----------------------------------------------------------------


@pytest.mark.parametrize("hostile", [
    "../../etc/passwd", "..", "/etc/passwd", "a/b", "a\\b", "0015..A1", "x\x00y", "a b",
    "%2e%2e", "acme;rm -rf", "ßtraße", "-rf", "a" * 129, "s3://bucket/key",
])
def test_hostile_ids_from_the_crm_never_become_a_path(hostile):
    with pytest.raises(UnsafeIdError, match="is not a plain id"):
        safe_id("account_id", hostile)
    with pytest.raises(UnsafeIdError):
        expand("accounts/{account_id}/contracts/*.pdf", {"account_id": hostile})


def test_plain_ids_fill_the_layout_and_an_empty_one_is_missing():
    assert expand("quotes/{quote_id}/sow.pdf", {"quote_id": " 006Q1 "}) == "quotes/006Q1/sow.pdf"
    assert safe_id("invoice_id", "INV-2026.0001_a") == "INV-2026.0001_a"
    with pytest.raises(MissingIdError, match="no the quote id"):
        expand("quotes/{quote_id}/sow.pdf", {"quote_id": None})


def test_facts_come_from_the_invoice_and_its_account(warehouse):
    facts = load_invoice_facts(warehouse, ["1003", "2001"])

    assert facts["1003"].ids() == {
        "account_id": "0015A1", "account_key": "a1", "crm_account_id": "0015A1",
        "erp_customer_id": "58", "opportunity_id": "006Q1", "quote_id": "006Q1",
        "order_id": "006Q1", "invoice_id": "1003", "invoice_number": "1003",
    }
    assert facts["2001"].ids()["account_id"] == "77"  # ERP-only: the ERP customer id
    assert (facts["1003"].value("segment"), facts["1003"].value("country"),
            facts["1003"].value("attribute.einvoice_format")) == ("enterprise", "DE", "facturx")


# -- repositories -----------------------------------------------------------------------


def test_the_folder_repository_finds_by_layout_and_returns_bytes_type_and_hash(tmp_path):
    files = file_tree(tmp_path / "repo")
    repository = LocalRepository(tmp_path / "repo")

    found = repository.find("accounts/0015A1/contracts/*.pdf")

    assert [(d.name, d.path, d.mime_type) for d in found] == [
        ("Order-Form-2026.PDF", "accounts/0015A1/contracts/Order-Form-2026.PDF",
         "application/pdf"),
        ("msa.pdf", "accounts/0015A1/contracts/msa.pdf", "application/pdf"),
    ]
    msa = files["accounts/0015A1/contracts/msa.pdf"]
    assert found[1].content == msa and found[1].sha256 == hashlib.sha256(msa).hexdigest()
    assert found[1].location == str(tmp_path / "repo/accounts/0015A1/contracts/msa.pdf")
    assert repository.find("quotes/006Q9/sow.pdf") == []


def test_the_folder_repository_ignores_a_symlink_leading_out_of_it(tmp_path):
    file_tree(tmp_path / "repo")
    (tmp_path / "secret.pdf").write_bytes(pdf_bytes("not for customers"))
    (tmp_path / "repo/quotes/006Q1/evil.pdf").symlink_to(tmp_path / "secret.pdf")

    found = LocalRepository(tmp_path / "repo").find("quotes/006Q1/*.pdf")

    assert [d.name for d in found] == ["sow.pdf"]


def test_the_s3_repository_finds_what_the_folder_finds(tmp_path, aws):  # noqa: F811
    files = file_tree(tmp_path / "repo")
    client = aws.client("s3")
    client.create_bucket(Bucket="supporting",
                         CreateBucketConfiguration={"LocationConstraint": aws.region})
    for name, content in files.items():
        client.put_object(Bucket="supporting", Key=f"docs/q2c/{name}", Body=content)
    client.put_object(Bucket="supporting", Key="docs/q2c/accounts/0015A1/contracts/old/x.pdf",
                      Body=pdf_bytes("in a sub-folder"))
    s3 = S3Repository("supporting", "docs/q2c/", endpoint_url=aws.endpoint_url,
                      region=aws.region)
    local = LocalRepository(tmp_path / "repo")

    for pattern, count in (("accounts/0015A1/contracts/*.pdf", 2), ("quotes/006Q1/sow.pdf", 1),
                           ("invoices/1003/*", 1), ("quotes/nothing/sow.pdf", 0)):
        from_s3, from_folder = s3.find(pattern), local.find(pattern)
        assert len(from_s3) == count
        assert [(d.name, d.path, d.content, d.sha256, d.mime_type) for d in from_s3] == \
            [(d.name, d.path, d.content, d.sha256, d.mime_type) for d in from_folder]
    assert s3.find("quotes/006Q1/sow.pdf")[0].location == \
        "s3://supporting/docs/q2c/quotes/006Q1/sow.pdf"


class RecordingClient:
    """A real boto3 client that notes every S3 call it is asked to make."""

    def __init__(self, client):
        self.client = client
        self.calls: list[tuple[str, dict]] = []

    def get_paginator(self, name):
        paginator = self.client.get_paginator(name)
        calls = self.calls

        class Recording:
            def paginate(self, **kwargs):
                calls.append((name, kwargs))
                return paginator.paginate(**kwargs)

        return Recording()

    def get_object(self, **kwargs):
        self.calls.append(("get_object", kwargs))
        return self.client.get_object(**kwargs)


def test_a_hostile_id_holds_the_invoice_without_a_request_to_s3(
    tmp_path, aws, warehouse  # noqa: F811
):
    client = aws.client("s3")
    client.create_bucket(Bucket="supporting",
                         CreateBucketConfiguration={"LocationConstraint": aws.region})
    client.put_object(Bucket="supporting", Key="etc/passwd/contracts/x.pdf",
                      Body=pdf_bytes("outside the prefix"))
    warehouse.execute("update core.dim_accounts set crm_account_id = '../../etc/passwd' "
                      "where account_key = 'a1'")
    recording = RecordingClient(client)
    repository = S3Repository("supporting", "docs", client=recording)
    doc = documents(warehouse, "1003")["1003"]
    facts = load_invoice_facts(warehouse, ["1003"])["1003"]

    plan = plan_attachments(doc, facts, parse_rules(yaml.safe_load(RULES), "rules.yaml"),
                            repository, None)

    assert plan.held and [m.rule_id for m in plan.missing_required] == ["enterprise-contract"]
    assert plan.reasons() == [
        "invoice 1003: rule `enterprise-contract` requires the contract, which could not be "
        "looked for: the CRM account id (the ERP customer id when the account is ERP-only) "
        "'../../etc/passwd' is not a plain id (letters, digits, '.', '_', '-'; no '..', '/' "
        "or spaces), so it was not looked up; correct it in the source system or key the "
        "rule's path on another id; looked in "
        "s3://supporting/docs/accounts/{account_id}/contracts/*.pdf (not looked up)"
    ]
    assert all("passwd" not in str(kwargs) for _, kwargs in recording.calls)
    assert [kwargs["Prefix"] for name, kwargs in recording.calls if name == "list_objects_v2"] \
        == ["docs/quotes/006Q1/", "docs/invoices/1003/"]


# -- planning ---------------------------------------------------------------------------


def test_the_rules_pick_each_accounts_documents(tmp_path, warehouse):
    files = file_tree(tmp_path / "repo")
    rules = parse_rules(yaml.safe_load(RULES), "rules.yaml")
    repository = LocalRepository(tmp_path / "repo")
    docs = documents(warehouse, "1003", "2001")
    facts = load_invoice_facts(warehouse, ["1003", "2001"])

    german = plan_attachments(docs["1003"], facts["1003"], rules, repository, None,
                              reserved_names=("1003.pdf",))
    american = plan_attachments(docs["2001"], facts["2001"], rules, repository, None)

    assert [(i.rule_id, i.document, i.name, i.email, i.embed) for i in german.items] == [
        ("enterprise-contract", "contract", "Order-Form-2026.PDF", True, False),
        ("enterprise-contract", "contract", "msa.pdf", True, False),
        ("sow", "statement_of_work", "sow.pdf", True, True),
        ("facturx-pod", "proof_of_delivery", "proof-of-delivery.pdf", True, False),
    ]
    assert german.items[2].content == files["quotes/006Q1/sow.pdf"]
    assert german.items[2].sha256 == hashlib.sha256(files["quotes/006Q1/sow.pdf"]).hexdigest()
    assert not german.held and german.skipped == ()
    assert [item.name for item in german.for_pdf] == ["sow.pdf"]

    # The US small business: no contract rule applies; its quote 006Q2 has no SoW (optional,
    # skipped) and its required terms are not filed (held).
    assert american.items == ()
    assert [m.rule_id for m in american.skipped] == ["sow"]
    assert american.reasons() == [
        f"invoice 2001: rule `smb-terms` requires the supporting document, which is not "
        f"there; looked in {tmp_path / 'repo' / 'accounts/77/terms.pdf'}"
    ]


def test_the_plan_digest_changes_with_a_document_and_names_stay_unique(tmp_path, warehouse):
    file_tree(tmp_path / "repo")
    (tmp_path / "repo/invoices/1003/sow.pdf").write_bytes(pdf_bytes("a second sow"))
    rules = parse_rules(yaml.safe_load(RULES.replace("proof-of-delivery.pdf", "*.pdf")), "r")
    repository = LocalRepository(tmp_path / "repo")
    doc = documents(warehouse, "1003")["1003"]
    facts = load_invoice_facts(warehouse, ["1003"])["1003"]

    first = plan_attachments(doc, facts, rules, repository, None, reserved_names=("msa.pdf",))
    (tmp_path / "repo/quotes/006Q1/sow.pdf").write_bytes(pdf_bytes("statement of work v2"))
    second = plan_attachments(doc, facts, rules, repository, None)

    assert [item.name for item in first.items] == [
        "Order-Form-2026.PDF", "msa-2.pdf", "sow.pdf", "proof-of-delivery.pdf", "sow-2.pdf"]
    assert first.digest(embedded_only=True) != second.digest(embedded_only=True)
    again = plan_attachments(doc, facts, rules, repository, None)
    assert again.digest() == second.digest()


def test_a_file_too_large_or_not_a_pdf_is_not_attached(tmp_path, warehouse):
    file_tree(tmp_path / "repo")
    (tmp_path / "repo/quotes/006Q1/sow.pdf").write_bytes(b"<html>not a pdf</html>")
    rules = parse_rules(yaml.safe_load(
        RULES.replace("required: true\n  - id: sow", "required: true\n    max_size: 100 B\n"
                      "  - id: sow")), "rules.yaml")
    doc = documents(warehouse, "1003")["1003"]
    facts = load_invoice_facts(warehouse, ["1003"])["1003"]

    plan = plan_attachments(doc, facts, rules, LocalRepository(tmp_path / "repo"), None)

    assert [m.rule_id for m in plan.missing_required] == ["enterprise-contract"]
    assert "is too large: accounts/0015A1/contracts/Order-Form-2026.PDF has" in \
        plan.reasons()[0] and "the rule allows 100 (max_size)" in plan.reasons()[0]
    assert [m.rule_id for m in plan.skipped] == ["sow"]
    assert "is named like a PDF but is not one" in plan.skipped[0].why


def test_a_file_that_only_starts_like_a_pdf_is_not_attached(tmp_path, warehouse):
    file_tree(tmp_path / "repo")
    (tmp_path / "repo/quotes/006Q1/sow.pdf").write_bytes(b"%PDF-1.4\nhello")
    (tmp_path / "repo/accounts/0015A1/contracts/Order-Form-2026.PDF").write_bytes(
        b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    rules = parse_rules(yaml.safe_load(RULES), "rules.yaml")
    doc = documents(warehouse, "1003")["1003"]
    facts = load_invoice_facts(warehouse, ["1003"])["1003"]

    plan = plan_attachments(doc, facts, rules, LocalRepository(tmp_path / "repo"), None)

    assert [m.rule_id for m in plan.missing_required] == ["enterprise-contract"]
    assert "Order-Form-2026.PDF starts like a PDF but cannot be read" in plan.reasons()[0]
    assert [m.rule_id for m in plan.skipped] == ["sow"]
    assert "sow.pdf starts like a PDF but cannot be read" in plan.skipped[0].why
    assert "replace it with a readable copy" in plan.skipped[0].why
    assert all(item.name not in ("sow.pdf", "Order-Form-2026.PDF") for item in plan.items)


def test_a_missing_repository_folder_is_reported_not_taken_for_an_empty_one(tmp_path,
                                                                             warehouse):
    rules = parse_rules(yaml.safe_load(RULES), "rules.yaml")
    doc = documents(warehouse, "1003")["1003"]
    facts = load_invoice_facts(warehouse, ["1003"])["1003"]

    plan = plan_attachments(doc, facts, rules, LocalRepository(tmp_path / "nowhere"), None)

    assert "could not be read (the attachment repository" in plan.reasons()[0]
    assert "point Q2C_ATTACHMENTS at the folder" in plan.reasons()[0]


def test_an_invoice_without_account_facts_gets_only_unconditional_rules(tmp_path, warehouse):
    file_tree(tmp_path / "repo")
    doc = documents(warehouse, "1003")["1003"]

    plan = plan_attachments(doc, InvoiceFacts("1003", "1003"),
                            parse_rules(yaml.safe_load(RULES), "rules.yaml"),
                            LocalRepository(tmp_path / "repo"), None)

    assert plan.items == () and [m.rule_id for m in plan.skipped] == ["sow"]


# -- the account statement --------------------------------------------------------------


def test_the_account_statement_has_the_hand_computed_balances_and_aging(warehouse):
    doc = documents(warehouse, "1003")["1003"]

    statement = load_account_statement(warehouse, doc, AS_OF)

    eur, kwd, usd = statement.sections
    assert (eur.currency, kwd.currency, usd.currency) == ("EUR", "KWD", "USD")
    assert [(line.invoice_number, line.open_amount.amount, line.days_overdue, line.bucket)
            for line in eur.lines] == [
        ("1001", Decimal("1000.00"), 75, "days_61_90"),
        ("1002", Decimal("300.00"), 39, "days_31_60"),
        ("1007", Decimal("80.50"), 11, "days_1_30"),
        ("1003", Decimal("119.00"), 0, "current"),
    ]
    assert eur.lines[1].total == Money(Decimal("500"), "EUR")
    assert {bucket: amount.amount for bucket, amount in eur.aging.items()} == {
        "current": Decimal("119.00"), "days_1_30": Decimal("80.50"),
        "days_31_60": Decimal("300.00"), "days_61_90": Decimal("1000.00"),
        "days_over_90": Decimal("0.00"),
    }
    assert [(c.credit_note_number, c.remaining.amount) for c in eur.credits] == \
        [("CN-1", Decimal("50.00"))]
    assert (eur.open_total.amount, eur.credit_total.amount, eur.balance.amount) == (
        Decimal("1499.50"), Decimal("50.00"), Decimal("1449.50"))
    assert (usd.lines[0].days_overdue, usd.aging["days_over_90"].amount, usd.balance.amount) \
        == (121, Decimal("250.00"), Decimal("250.00"))
    assert kwd.balance == Money(Decimal("12.345"), "KWD") and str(kwd.balance.amount) == "12.345"


def test_the_account_statement_pdf_prints_the_balances_in_the_accounts_locale(warehouse,
                                                                             content):
    doc = documents(warehouse, "1003")["1003"]
    statement = load_account_statement(warehouse, doc, AS_OF)

    pdf, entry = render_statement_pdf(statement, content)

    text = re.sub(r"[\s\u00a0\u202f]+", " ", "\n".join(
        page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages))
    assert entry.ref == "account_statement@v1" and entry.status == "approved"
    assert "KONTOAUSZUG" in text and "Stichtag 31.03.2026" in text and "Beispiel GmbH" in text
    for amount in ("1.000,00 €", "300,00 €", "80,50 €", "119,00 €", "1.499,50 €", "-50,00 €",
                   "1.449,50 €", "250,00 $", "12,345 KWD"):
        assert amount in text, amount
    assert "Rechnung 1001" in text and "Gutschrift CN-1" in text and "1004" not in text
    assert render_statement_pdf(statement, content)[0] == pdf  # same data, same bytes


def test_the_statement_rule_attaches_one_generated_statement_per_account(warehouse, content,
                                                                        tmp_path):
    rules = parse_rules({"version": 1, "rules": [
        {"id": "statement", "document": "account_statement", "required": True,
         "embed": True}]}, "rules.yaml")
    docs = documents(warehouse, "1002", "1003")
    facts = load_invoice_facts(warehouse, ["1002", "1003"])
    source = WarehouseStatementSource(warehouse, content, AS_OF)

    plans = [plan_attachments(docs[i], facts[i], rules, LocalRepository(tmp_path), source)
             for i in ("1002", "1003")]

    first, second = (plan.items[0] for plan in plans)
    assert (first.name, first.rule_id, first.mime_type, first.email, first.embed) == (
        "account-statement-2026-03-31.pdf", "statement", "application/pdf", True, True)
    assert first.content.startswith(b"%PDF-") and first.sha256 == second.sha256
    assert first.source == ("generated from core.fct_invoices and core.fct_credit_notes as of "
                            "2026-03-31 with account_statement@v1")


# -- embedding --------------------------------------------------------------------------


def test_embedded_documents_are_inside_the_pdf_byte_for_byte(tmp_path, warehouse):
    files = file_tree(tmp_path / "repo")
    rules = parse_rules(yaml.safe_load(RULES), "rules.yaml")
    doc = documents(warehouse, "1003")["1003"]
    plan = plan_attachments(doc, load_invoice_facts(warehouse, ["1003"])["1003"], rules,
                            LocalRepository(tmp_path / "repo"), None)
    invoice = pdf_bytes("invoice 1003")

    combined = embed_files(invoice, plan.for_pdf, "1003")

    reader = PdfReader(io.BytesIO(combined))
    assert reader.attachments == {"sow.pdf": [files["quotes/006Q1/sow.pdf"]]}
    [spec] = reader.trailer["/Root"]["/AF"]
    assert spec.get_object()["/AFRelationship"] == "/Supplement"
    assert spec.get_object()["/EF"]["/F"].get_object()["/Subtype"] == "/application/pdf"
    assert len(reader.pages) == 1 and embed_files(invoice, (), "1003") == invoice
    assert embed_files(combined, plan.for_pdf, "1003") == combined  # already inside
    assert embed_files(invoice, plan.for_pdf, "1003") == combined  # same inputs, same bytes
    other = replace(plan.for_pdf[0], content=pdf_bytes("another sow"))
    with pytest.raises(EmbedError, match="already holds another file named 'sow.pdf'"):
        embed_files(combined, [other], "1003")


def test_a_document_the_renderer_embedded_is_not_embedded_again(tmp_path, warehouse):
    file_tree(tmp_path / "repo")
    doc = documents(warehouse, "1003")["1003"]
    plan = plan_attachments(doc, load_invoice_facts(warehouse, ["1003"])["1003"],
                            parse_rules(yaml.safe_load(RULES), "rules.yaml"),
                            LocalRepository(tmp_path / "repo"), None)
    html = "<html><head><title>1003</title></head><body><p>Invoice 1003</p></body></html>"

    rendered = render_pdf(html, CONTENT_DIR, attachments=plan.renderer_attachments())

    assert PdfReader(io.BytesIO(rendered)).attachments == {
        "sow.pdf": [plan.for_pdf[0].content]}
    assert embed_files(rendered, plan.for_pdf, "1003") == rendered


# -- settings ---------------------------------------------------------------------------


def test_the_repository_and_rules_come_from_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    (tmp_path / "q2c.yaml").write_text("attachment_rules: /etc/q2c/attachments.yaml\n")
    monkeypatch.setenv("Q2C_CONFIG", str(tmp_path / "q2c.yaml"))
    monkeypatch.delenv("Q2C_ATTACHMENTS", raising=False)
    monkeypatch.delenv("Q2C_ATTACHMENT_RULES", raising=False)

    settings = load_settings()
    assert settings.attachments_repository == str(tmp_path.resolve() / "attachments")
    assert settings.attachment_rules_file == Path("/etc/q2c/attachments.yaml")

    monkeypatch.setenv("Q2C_ATTACHMENTS", "s3://supporting/docs")
    assert load_settings().attachments_repository == "s3://supporting/docs"
