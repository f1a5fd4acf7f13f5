"""`q2c content`: list, check the lock, approve, explain and preview, from the command line.

Each test calls `q2c.cli.main` the way the console script does, on a private copy of the
content store; preview and explain read a real DuckDB warehouse with the core contract
tables in tmp_path (Q2C_WAREHOUSE).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest
from content_support import CONTENT_DIR, copy_content, pdf_pages

from q2c.cli import main
from q2c.content.registry import load_registry
from q2c.documents.preview import find_invoice
from q2c.documents.render import render_html, render_pdf
from q2c.settings import Seller

ON = "2026-06-01"
LINES = 40  # enough for the invoice to run over two pages

_CONTRACT_DDL = """
create schema core;
create table core.dim_accounts (
    account_key varchar, crm_account_id varchar, erp_customer_id varchar,
    match_method varchar, account_name varchar, parent_account_key varchar,
    segment varchar, country_code varchar, language varchar, locale varchar,
    currency varchar, billing_email varchar, billing_contact_name varchar,
    billing_street varchar, billing_city varchar, billing_postal_code varchar,
    billing_region varchar, billing_country_code varchar, vat_id varchar,
    delivery_preference varchar, payment_term_days integer, source_systems varchar
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
    customer_memo varchar, created_at timestamp, updated_at timestamp
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
"""


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch) -> Path:
    """Settings from the environment only, with a warehouse holding invoice INV-9001.

    INV-9001: enterprise customer in the UK, English; 40 lines of 25.00 = 1000.00, 20 % VAT
    200.00, total 1200.00, nothing paid.
    """
    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("Q2C_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("Q2C_WAREHOUSE", str(warehouse))
    (tmp_path / "empty-q2c.yaml").write_text("")
    monkeypatch.setenv("Q2C_CONFIG", str(tmp_path / "empty-q2c.yaml"))
    conn = duckdb.connect(str(warehouse))
    conn.execute(_CONTRACT_DDL)
    conn.execute("""
        insert into core.dim_accounts (account_key, account_name, segment, country_code,
            language, locale, currency, billing_email, billing_street, billing_city,
            billing_postal_code, billing_country_code, vat_id, payment_term_days) values
        ('a1', 'Harbour Freight Ltd', 'enterprise', 'GB', 'en', 'en_GB', 'GBP',
         'ap@harbour.example', '1 Dock Road', 'Leeds', 'LS1 4AP', 'GB', 'GB123456789', 30)
    """)
    conn.execute("""
        insert into core.fct_invoices (invoice_id, invoice_number, account_key, issue_date,
            due_date, currency, subtotal_amount, discount_amount, tax_amount, total_amount,
            paid_amount, credited_amount, balance_amount, computed_balance_amount) values
        ('9001', 'INV-9001', 'a1', '2026-05-04', '2026-06-03', 'GBP', 1000, 0, 200, 1200,
         0, 0, 1200, 1200)
    """)
    conn.executemany(
        "insert into core.fct_invoice_lines (invoice_id, line_index, line_type, item_name, "
        "description, quantity, unit_price, amount, currency) values "
        "('9001', ?, 'item', null, ?, 1, 25, 25, 'GBP')",
        [[i, f"Support ticket {i}"] for i in range(1, LINES + 1)],
    )
    conn.execute("""
        insert into core.fct_invoice_tax_lines (invoice_id, line_index, tax_percent,
            taxable_amount, tax_amount, currency) values ('9001', 1, 20, 1000, 200, 'GBP')
    """)
    conn.close()
    return warehouse


def _add_draft_invoice_template(root: Path) -> int:
    """A draft of the next invoice template that prints a marker and NO watermark of its
    own (the preview must add one anyway). Returns its version."""
    registry = load_registry(root)
    approved = registry.get("invoice", on=dt.date.fromisoformat(ON))
    version = registry.versions("invoice")[-1].version + 1
    folder = root / f"templates/invoice/v{version}"
    shutil.copytree(approved.folder, folder)
    template = folder / approved.main
    text = re.sub(r"{% if preview %}.*?{% endif %}", "", template.read_text(), flags=re.S)
    template.write_text(text.replace("<body>", "<body>\n<p>Layout marker 7Q</p>", 1))
    with (root / "registry.yaml").open("a") as registry_file:
        registry_file.write(
            f"  - id: invoice\n    version: {version}\n    kind: template\n"
            f"    status: draft\n    effective_from: 2018-01-01\n"
            f"    path: templates/invoice/v{version}\n    main: {approved.main}\n"
        )
    return version


# --- check ---------------------------------------------------------------------------------


def test_check_passes_on_the_shipped_content(settings_env, capsys):
    assert main(["content", "check", "--content", str(CONTENT_DIR)]) == 0

    assert capsys.readouterr().out.startswith("Content lock intact: ")


def test_check_names_an_edited_approved_file_and_asks_for_a_new_version(
    settings_env, tmp_path, capsys
):
    root = copy_content(tmp_path)
    legal = root / "legal/late_payment_fr/v1/fr.txt"
    legal.write_text(legal.read_text().replace("40 euros", "50 euros"))

    code = main(["content", "check", "--content", str(root)])

    out = capsys.readouterr().out
    assert code == 1
    assert "Content lock of" in out and "BROKEN (1 problems)" in out
    assert ("  - legal/late_payment_fr/v1/fr.txt: file `fr.txt` of approved content "
            "late_payment_fr@v1 changed after approval") in out
    assert "put the change in a new version (v2) of `late_payment_fr`" in out


# --- list and approve ----------------------------------------------------------------------


def test_list_shows_versions_with_status_targeting_and_approval(settings_env, capsys):
    assert main(["content", "list", "--content", str(CONTENT_DIR), "--id", "late_payment_fr",
                 "--json"]) == 0

    listed = json.loads(capsys.readouterr().out)
    assert listed == [{
        "id": "late_payment_fr", "version": 1, "kind": "legal", "status": "approved",
        "slot": "late_payment", "effective_from": "2018-01-01", "effective_to": None,
        "targeting": {"country": ["FR"]}, "case": "late_payment", "placement": None,
        "approved_by": "Legal (tax and contract review)",
        "approved_at": "2026-12-04T18:30:00+00:00", "path": "legal/late_payment_fr/v1",
    }]


def test_approve_locks_a_draft_and_refuses_it_the_second_time(settings_env, tmp_path, capsys):
    root = copy_content(tmp_path)
    version = _add_draft_invoice_template(root)

    first = main(["content", "approve", "invoice", str(version), "--by", "Ana",
                  "--effective-from", "2027-01-01", "--content", str(root)])
    first_out = capsys.readouterr().out
    second = main(["content", "approve", "invoice", str(version), "--by", "Ana",
                   "--content", str(root)])
    second_err = capsys.readouterr().err

    entry = load_registry(root).version("invoice", version)
    assert first == 0 and f"Approved invoice@v{version} by Ana" in first_out
    assert (entry.status, entry.approved_by, entry.effective_from) == (
        "approved", "Ana", dt.date(2027, 1, 1)
    )
    assert second == 1
    assert f"invoice@v{version} is approved, not a draft" in second_err
    assert main(["content", "check", "--content", str(root)]) == 0


# --- explain and preview -------------------------------------------------------------------


def test_explain_says_which_content_an_invoice_gets_and_why(settings_env, capsys):
    code = main(["content", "explain", "--invoice", "INV-9001", "--on", "2026-12-15",
                 "--content", str(CONTENT_DIR)])

    out = capsys.readouterr().out
    assert code == 0
    # Enterprise (from core.dim_accounts), United Kingdom, English, in the year-end closure.
    assert "  block year_end_closure v1: any reader\n" in out
    assert "  block account_manager v1: segment=enterprise\n" in out
    assert "  legal late_payment_default v1: any reader\n" in out
    assert "  fallback: legal late_payment: country GB -> default\n" in out


def test_a_draft_renders_only_as_a_preview_with_a_watermark_on_every_page(
    settings_env, tmp_path, capsys
):
    root = copy_content(tmp_path)
    version = _add_draft_invoice_template(root)
    out = tmp_path / "previews" / "draft.pdf"

    code = main(["content", "preview", "invoice", "--invoice", "INV-9001", "--out", str(out),
                 "--on", ON, "--content", str(root)])

    printed = capsys.readouterr().out
    assert code == 0
    assert f"Preview of invoice@v{version} (draft) on invoice INV-9001" in printed
    assert f"  template invoice v{version}: substituted for preview" in printed
    preview_pages = pdf_pages(out.read_bytes())
    assert len(preview_pages) >= 2
    assert all("DRAFT – not valid" in page for page in preview_pages)
    assert "Layout marker 7Q" in preview_pages[0]

    # Production, from the same content and warehouse, never takes the draft.
    registry = load_registry(root)
    with duckdb.connect(str(settings_env), read_only=True) as conn:
        doc, _ = find_invoice(conn, "INV-9001", Seller())
    html, selection = render_html(doc, registry, on=dt.date.fromisoformat(ON))
    production_pages = pdf_pages(render_pdf(html, root))
    assert selection.template.version < version and selection.template.status == "approved"
    assert len(production_pages) >= 2
    assert not any("DRAFT" in page or "Layout marker" in page for page in production_pages)


def test_preview_of_a_draft_legal_text_substitutes_it(settings_env, tmp_path, capsys):
    root = copy_content(tmp_path)
    shutil.copytree(root / "legal/late_payment_default/v1", root / "legal/late_payment_default/v2")
    with (root / "registry.yaml").open("a") as registry_file:
        registry_file.write(
            "  - id: late_payment_default\n    version: 2\n    kind: legal\n"
            "    status: draft\n    case: late_payment\n    effective_from: 2018-01-01\n"
            "    path: legal/late_payment_default/v2\n"
        )
    out = tmp_path / "legal.pdf"

    code = main(["content", "preview", "late_payment_default", "--invoice", "9001",
                 "--out", str(out), "--on", ON, "--content", str(root)])

    printed = capsys.readouterr().out
    assert code == 0
    assert "  legal late_payment_default v2: substituted for preview\n" in printed
    assert all("DRAFT – not valid" in page for page in pdf_pages(out.read_bytes()))


def test_preview_of_an_unknown_invoice_says_what_to_give(settings_env, capsys):
    code = main(["content", "preview", "invoice", "--invoice", "INV-0000",
                 "--content", str(CONTENT_DIR)])

    assert code == 1
    assert "no invoice `INV-0000` in core.fct_invoices" in capsys.readouterr().err
