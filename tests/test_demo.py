"""The demo generator: deterministic, contract-shaped, linked, and right to the minor unit."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from q2c import demo
from q2c.money import is_iso_currency, minor_units
from q2c.sources.schema import DEFAULT_TABLES as RAW_TABLES

AS_OF = dt.date(2026, 3, 15)
SEED = 20260315


def read(folder: Path, table: str) -> list[dict[str, str]]:
    source, name = table.split(".")
    with (folder / source / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> tuple[Path, demo.GenerationSummary]:
    folder = tmp_path_factory.mktemp("demo")
    return folder, demo.generate(folder, SEED, 200, AS_OF)


@pytest.fixture(scope="module")
def tables(landing) -> dict[str, list[dict[str, str]]]:
    folder, _ = landing
    return {f"{t.source}.{t.name}": read(folder, f"{t.source}.{t.name}") for t in RAW_TABLES}


@pytest.fixture(scope="module")
def good_invoices(landing, tables) -> list[dict[str, str]]:
    _, summary = landing
    bad = summary.bad_invoice_ids
    return [row for row in tables["quickbooks.invoice"] if row["id"] not in bad]


def by_invoice(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        grouped[row["invoice_id"]].append(row)
    return grouped


def test_same_seed_and_arguments_write_byte_identical_files(landing, tmp_path):
    folder, summary = landing
    again = demo.generate(tmp_path, SEED, 200, AS_OF)
    assert [p.relative_to(tmp_path) for p in again.files] == [
        p.relative_to(folder) for p in summary.files]
    for first, second in zip(summary.files, again.files, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name
    assert again.as_dict()["bad_rows"] == summary.as_dict()["bad_rows"]


def test_another_seed_gives_other_data(landing, tmp_path):
    folder, _ = landing
    demo.generate(tmp_path, SEED + 1, 200, AS_OF)
    first = (folder / "quickbooks" / "invoice.csv").read_bytes()
    assert (tmp_path / "quickbooks" / "invoice.csv").read_bytes() != first


def test_every_raw_table_has_a_file_with_exactly_the_contract_columns(landing):
    folder, summary = landing
    assert len(summary.files) == len(RAW_TABLES)
    for table in RAW_TABLES:
        path = folder / table.source / f"{table.name}.csv"
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle))
        assert header == list(table.columns), path


def test_row_counts_in_the_summary_match_the_files(landing, tables):
    _, summary = landing
    assert summary.row_counts == {name: len(rows) for name, rows in tables.items()}


def test_two_hundred_accounts_give_about_a_thousand_invoices(landing, tables):
    _, summary = landing
    assert len(tables["salesforce.account"]) == 200
    assert 900 <= len(tables["quickbooks.invoice"]) <= 1100
    good = sum(summary.invoices_by_state.values())
    assert good == len(summary.invoice_states)
    # every invoice row is either good or one of the named bad invoice rows (one id twice)
    assert len(tables["quickbooks.invoice"]) == good + len(
        summary.bad_rows[demo.DUPLICATE_KEY]) + sum(
        len(summary.bad_rows[kind]) for kind in demo.BAD_INVOICE_KINDS)


def test_every_state_is_represented(landing):
    _, summary = landing
    for state in demo.STATES:
        assert summary.invoices_by_state[state] > 0, state


def test_booleans_and_timestamps_look_the_way_fivetran_lands_them(landing, tables):
    _, summary = landing
    odd = {(row.table, row.key[0]) for row in summary.bad_rows[demo.ODD_TIMESTAMP]}
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
    for table in RAW_TABLES:
        name = f"{table.source}.{table.name}"
        for row in tables[name]:
            assert stamp.match(row["_fivetran_synced"]), (name, row)
            for column in ("created_at", "updated_at", "created_date", "last_modified_date"):
                if column in row and (name, row.get("id")) not in odd:
                    assert stamp.match(row[column]), (name, column, row[column])
            for column in ("is_deleted", "_fivetran_deleted", "active", "is_closed"):
                if column in row:
                    assert row[column] in ("true", "false"), (name, column, row[column])


def test_good_invoice_totals_equal_lines_minus_discounts_plus_tax(good_invoices, tables):
    lines = by_invoice(tables["quickbooks.invoice_line"])
    taxes = by_invoice(tables["quickbooks.invoice_tax_line"])
    checked_discount = checked_subtotal = 0
    for invoice in good_invoices:
        quantum = Decimal(1).scaleb(-minor_units(invoice["currency_id"]))
        sales = discounts = Decimal(0)
        for line in lines[invoice["id"]]:
            amount = Decimal(line["amount"])
            if line["detail_type"] == "SalesItemLineDetail":
                price = Decimal(line["sales_item_unit_price"])
                quantity = Decimal(line["sales_item_quantity"])
                assert amount == (quantity * price).quantize(quantum, ROUND_HALF_UP), line
                sales += amount
            elif line["detail_type"] == "DiscountLineDetail":
                discounts += amount
                checked_discount += 1
            elif line["detail_type"] == "SubTotalLineDetail":
                subtotal = sum(Decimal(x["amount"]) for x in lines[invoice["id"]]
                               if x["detail_type"] == "SalesItemLineDetail")
                assert amount == subtotal
                checked_subtotal += 1
        tax = sum((Decimal(t["amount"]) for t in taxes[invoice["id"]]), Decimal(0))
        for tax_line in taxes[invoice["id"]]:
            base = Decimal(tax_line["net_amount_taxable"])
            assert base == sales - discounts
            expected = (base * Decimal(tax_line["tax_percent"]) / 100).quantize(
                quantum, ROUND_HALF_UP)
            assert Decimal(tax_line["amount"]) == expected, invoice["id"]
        assert Decimal(invoice["total_tax"]) == tax
        assert Decimal(invoice["total_amount"]) == sales - discounts + tax, invoice["id"]
    assert checked_discount > 0 and checked_subtotal > 0


def test_amounts_carry_exactly_the_minor_units_of_their_currency(good_invoices, tables):
    lines = by_invoice(tables["quickbooks.invoice_line"])
    seen = Counter()
    for invoice in good_invoices:
        currency = invoice["currency_id"]
        decimals = minor_units(currency)
        texts = [invoice["total_amount"], invoice["total_tax"], invoice["balance"]]
        texts += [line["amount"] for line in lines[invoice["id"]]]
        for text in texts:
            fraction = text.partition(".")[2]
            assert len(fraction) == decimals, (currency, text)
        seen[currency] += 1
    assert seen["JPY"] > 0 and seen["KWD"] > 0 and seen["EUR"] > 0
    assert seen["USD"] > 0 and seen["GBP"] > 0


def test_tax_rates_follow_the_customer_country(good_invoices, tables):
    customers = {row["id"]: row for row in tables["quickbooks.customer"]}
    addresses = {row["id"]: row for row in tables["quickbooks.address"]}
    taxes = by_invoice(tables["quickbooks.invoice_tax_line"])
    expected = {"Germany": {"19"}, "France": {"20"}, "Netherlands": {"21"}, "Spain": {"21"},
                "United Kingdom": {"20"}, "Japan": {"10"}, "Kuwait": {"0"},
                "United States": {"0", "6.25", "6.5", "7.25", "8"}}
    for invoice in good_invoices:
        country = addresses[customers[invoice["customer_id"]]["bill_address_id"]]["country"]
        for tax_line in taxes[invoice["id"]]:
            assert tax_line["tax_percent"] in expected[country], (country, tax_line)


def test_due_date_is_issue_date_plus_the_term_days(good_invoices, tables):
    terms = {row["id"]: int(row["due_days"]) for row in tables["quickbooks.term"]}
    assert sorted(terms.values()) == [0, 15, 30, 60]
    for invoice in good_invoices:
        issue = dt.date.fromisoformat(invoice["transaction_date"])
        due = dt.date.fromisoformat(invoice["due_date"])
        assert due - issue == dt.timedelta(days=terms[invoice["sales_term_id"]])
        assert AS_OF - dt.timedelta(days=366) < issue < AS_OF
        assert re.fullmatch(rf"INV-{issue.year}-\d{{6}}", invoice["doc_number"])


def test_every_good_invoice_belongs_to_an_existing_customer_and_a_won_deal(
        good_invoices, tables, landing):
    _, summary = landing
    customers = {row["id"]: row for row in tables["quickbooks.customer"]}
    deals = {row["id"]: row for row in tables["salesforce.opportunity"]}
    erp_only = {link.customer_id for link in summary.links if link.method == demo.ERP_ONLY}
    for invoice in good_invoices:
        customer = customers[invoice["customer_id"]]
        assert invoice["currency_id"] == customer["currency_id"]
        assert invoice["billing_email"] == customer["email"]
        if invoice["customer_id"] in erp_only:
            assert invoice["custom_salesforce_opportunity_id"] == ""
            continue
        deal = deals[invoice["custom_salesforce_opportunity_id"]]
        assert deal["stage_name"] == "Closed Won" and deal["is_won"] == "true"
        assert deal["close_date"] <= invoice["transaction_date"]


def test_accounts_link_to_customers_by_id_tax_id_or_name_and_domain(landing, tables):
    _, summary = landing
    accounts = {row["id"]: row for row in tables["salesforce.account"]}
    customers = {row["id"]: row for row in tables["quickbooks.customer"]}
    methods = summary.match_methods
    assert methods[demo.EXTERNAL_ID] > methods[demo.TAX_ID] > methods[demo.NAME_DOMAIN] > 0
    assert methods[demo.ERP_ONLY] >= 2 and methods[demo.CRM_ONLY] >= 1

    def domain(url: str) -> str:
        return re.sub(r"^(https?://)?(www\.)?", "", url).rstrip("/")

    def plain(name: str) -> str:
        return " ".join(re.sub(r"[.,]", " ", name).lower().split())

    for account in accounts.values():
        if account["account_number"]:
            customer = customers[account["account_number"]]
            assert customer["display_name"] == account["name"]
    for link in summary.links:
        account, customer = accounts.get(link.account_id), customers.get(link.customer_id)
        if link.method == demo.EXTERNAL_ID:
            assert account["account_number"] == customer["id"]
        elif link.method == demo.TAX_ID:
            assert account["account_number"] == ""
            assert account["vat_number_c"] == customer["primary_tax_identifier"] != ""
        elif link.method == demo.NAME_DOMAIN:
            assert account["account_number"] == "" and account["vat_number_c"] == ""
            assert customer["display_name"] != account["name"]
            assert plain(customer["display_name"]) == plain(account["name"])
            assert domain(customer["website"]) == domain(account["website"])
        elif link.method == demo.ERP_ONLY:
            assert account is None and customer is not None
        else:
            assert customer is None and account["type"] == "Prospect"
    numbers = [a["account_number"] for a in accounts.values() if a["account_number"]]
    assert len(numbers) == len(set(numbers))


def test_some_accounts_have_a_parent_account(tables):
    accounts = {row["id"]: row for row in tables["salesforce.account"]}
    children = [a for a in accounts.values() if a["parent_id"]]
    assert children
    assert all(child["parent_id"] in accounts for child in children)


def test_each_account_has_one_live_billing_contact_with_a_valid_email(tables):
    billing = Counter()
    for contact in tables["salesforce.contact"]:
        if contact["is_billing_contact_c"] == "true" and contact["is_deleted"] == "false":
            billing[contact["account_id"]] += 1
            assert re.fullmatch(r"[a-z0-9.]+@[a-z0-9-]+\.example", contact["email"])
    assert set(billing.values()) == {1}
    assert set(billing) == {a["id"] for a in tables["salesforce.account"]}


def test_invoice_balance_follows_payments_and_credit_notes(landing, good_invoices, tables):
    _, summary = landing
    payments = {row["id"]: row for row in tables["quickbooks.payment"]}
    paid: dict[str, Decimal] = defaultdict(Decimal)
    credited: dict[str, Decimal] = defaultdict(Decimal)
    lines_per_payment = Counter(line["payment_id"] for line in tables["quickbooks.payment_line"])
    for line in tables["quickbooks.payment_line"]:
        if not line["invoice_id"]:
            continue
        if Decimal(payments[line["payment_id"]]["total_amount"]) == 0:
            credited[line["invoice_id"]] += Decimal(line["amount"])
        else:
            paid[line["invoice_id"]] += Decimal(line["amount"])
    for invoice in good_invoices:
        total, balance = Decimal(invoice["total_amount"]), Decimal(invoice["balance"])
        assert balance == total - paid[invoice["id"]] - credited[invoice["id"]]
        state = summary.invoice_states[invoice["id"]]
        due = dt.date.fromisoformat(invoice["due_date"])
        if state == demo.PAID:
            assert balance == 0 and credited[invoice["id"]] == 0
        elif state == demo.CREDITED:
            assert balance == 0 and credited[invoice["id"]] == total
        elif state == demo.PARTIALLY_PAID:
            assert 0 < balance < total
        elif state == demo.OVERDUE:
            assert balance == total and due < AS_OF
        elif state == demo.CURRENT:
            assert balance == total and due >= AS_OF
    two_invoice_payments = [p for p, n in lines_per_payment.items()
                            if n == 2 and Decimal(payments[p]["total_amount"]) > 0]
    assert two_invoice_payments


def test_customer_balance_is_open_invoices_less_unapplied_credit(tables):
    open_balance: dict[str, Decimal] = defaultdict(Decimal)
    for memo in tables["quickbooks.credit_memo"]:
        open_balance[memo["customer_id"]] -= Decimal(memo["remaining_credit"])
    seen = set()
    for invoice in tables["quickbooks.invoice"]:
        if invoice["id"] and invoice["_fivetran_deleted"] == "false" and invoice["id"] not in seen:
            seen.add(invoice["id"])
            open_balance[invoice["customer_id"]] += Decimal(invoice["balance"])
    for customer in tables["quickbooks.customer"]:
        assert Decimal(customer["balance"]) == open_balance[customer["id"]], customer["id"]


def test_credit_notes_are_applied_by_zero_total_payments(tables):
    memos = {row["id"]: row for row in tables["quickbooks.credit_memo"]}
    lines = defaultdict(list)
    for line in tables["quickbooks.payment_line"]:
        lines[line["payment_id"]].append(line)
    applications = [p for p in tables["quickbooks.payment"] if Decimal(p["total_amount"]) == 0]
    open_credit = [m for m in memos.values() if Decimal(m["remaining_credit"]) > 0]
    assert len(applications) == len(memos) - len(open_credit) > 0
    assert open_credit
    for memo in open_credit:
        assert memo["remaining_credit"] == memo["total_amount"] == memo["balance"]
    for payment in applications:
        invoice_line, memo_line = lines[payment["id"]]
        assert invoice_line["invoice_id"] and not invoice_line["credit_memo_id"]
        assert memo_line["credit_memo_id"] in memos and not memo_line["invoice_id"]
        assert invoice_line["amount"] == memo_line["amount"]
        assert memos[memo_line["credit_memo_id"]]["total_amount"] == memo_line["amount"]


def test_payments_add_up_and_are_dated_before_as_of(tables):
    applied: dict[str, Decimal] = defaultdict(Decimal)
    for line in tables["quickbooks.payment_line"]:
        if line["invoice_id"]:
            applied[line["payment_id"]] += Decimal(line["amount"])
    for payment in tables["quickbooks.payment"]:
        total = Decimal(payment["total_amount"])
        assert dt.date.fromisoformat(payment["transaction_date"]) < AS_OF
        if total:
            assert total == applied[payment["id"]] + Decimal(payment["unapplied_amount"])


def test_disputed_invoices_have_an_open_billing_dispute_case(landing, good_invoices, tables):
    _, summary = landing
    open_disputes = {case["invoice_number_c"] for case in tables["salesforce.case"]
                     if case["type"] == "Billing Dispute" and case["is_closed"] == "false"}
    disputed = {inv["doc_number"] for inv in good_invoices
                if summary.invoice_states[inv["id"]] == demo.DISPUTED}
    assert disputed and disputed == open_disputes


def test_recent_invoices_still_need_to_be_sent(good_invoices):
    window = AS_OF - dt.timedelta(days=demo.AWAITING_EMAIL_DAYS)
    recent = [inv for inv in good_invoices
              if dt.date.fromisoformat(inv["transaction_date"]) >= window]
    older = [inv for inv in good_invoices
             if dt.date.fromisoformat(inv["transaction_date"]) < window]
    assert recent and all(inv["email_status"] == "NeedToSend" for inv in recent)
    assert older and not any(inv["email_status"] == "NeedToSend" for inv in older)


def test_closed_won_deals_without_invoices_are_reported_as_unbilled(landing, tables):
    _, summary = landing
    invoiced = {inv["custom_salesforce_opportunity_id"] for inv in tables["quickbooks.invoice"]}
    won = {o["id"] for o in tables["salesforce.opportunity"] if o["stage_name"] == "Closed Won"}
    assert summary.unbilled_opportunity_ids
    assert set(summary.unbilled_opportunity_ids) == won - invoiced


def test_each_bad_invoice_kind_is_in_the_files_as_reported(landing, tables):
    _, summary = landing
    invoices = tables["quickbooks.invoice"]
    for kind in demo.BAD_ROW_KINDS:
        assert len(summary.bad_rows[kind]) == 1, kind
    [row] = summary.bad_rows[demo.INVALID_CURRENCY]
    [invoice] = [i for i in invoices if i["doc_number"] == row.doc_number]
    assert invoice["currency_id"] == "US$" and not is_iso_currency(invoice["currency_id"])
    assert [i for i in invoices if not is_iso_currency(i["currency_id"])] == [invoice]

    [row] = summary.bad_rows[demo.DUE_BEFORE_ISSUE]
    [invoice] = [i for i in invoices if i["id"] == row.invoice_id]
    assert invoice["due_date"] < invoice["transaction_date"]
    assert [i["id"] for i in invoices if i["due_date"] < i["transaction_date"]] == [
        row.invoice_id]

    [row] = summary.bad_rows[demo.MISSING_KEY]
    assert [i["doc_number"] for i in invoices if i["id"] == ""] == [row.doc_number]

    [row] = summary.bad_rows[demo.DUPLICATE_KEY]
    twins = [i for i in invoices if i["id"] == row.invoice_id]
    assert len(twins) == 2 and twins[0]["updated_at"] != twins[1]["updated_at"]
    counts = Counter(i["id"] for i in invoices if i["id"])
    assert [key for key, n in counts.items() if n > 1] == [row.invoice_id]

    [row] = summary.bad_rows[demo.SOFT_DELETED]
    assert [i["id"] for i in invoices if i["_fivetran_deleted"] == "true"] == [row.invoice_id]


def test_bad_amounts_are_in_the_files_as_reported(landing, tables):
    _, summary = landing
    lines = by_invoice(tables["quickbooks.invoice_line"])
    taxes = by_invoice(tables["quickbooks.invoice_tax_line"])

    [row] = summary.bad_rows[demo.TOTAL_MISMATCH]
    [invoice] = [i for i in tables["quickbooks.invoice"] if i["id"] == row.invoice_id]
    sales = sum(Decimal(x["amount"]) for x in lines[row.invoice_id]
                if x["detail_type"] == "SalesItemLineDetail")
    discount = sum(Decimal(x["amount"]) for x in lines[row.invoice_id]
                   if x["detail_type"] == "DiscountLineDetail")
    tax = sum(Decimal(t["amount"]) for t in taxes[row.invoice_id])
    assert Decimal(invoice["total_amount"]) - (sales - discount + tax) == Decimal("1.00")

    [row] = summary.bad_rows[demo.UNPARSEABLE_LINE_AMOUNT]
    unparseable = [(x["invoice_id"], x["index"]) for x in tables["quickbooks.invoice_line"]
                   if not re.fullmatch(r"-?\d+(\.\d+)?", x["amount"])]
    assert unparseable == [row.key]

    [row] = summary.bad_rows[demo.ORPHAN_PAYMENT_LINE]
    invoice_ids = {i["id"] for i in tables["quickbooks.invoice"]}
    orphans = [(x["payment_id"], x["index"]) for x in tables["quickbooks.payment_line"]
               if x["invoice_id"] and x["invoice_id"] not in invoice_ids]
    assert orphans == [row.key]

    [row] = summary.bad_rows[demo.MISSING_AMOUNT]
    assert [o["id"] for o in tables["salesforce.opportunity"] if o["amount"] == ""] == [
        row.key[0]]

    [row] = summary.bad_rows[demo.ODD_TIMESTAMP]
    [customer] = [c for c in tables["quickbooks.customer"] if c["id"] == row.key[0]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d:\d\d:\d\d", customer["updated_at"])


def test_a_small_demo_still_has_every_country_and_every_bad_row(tmp_path):
    summary = demo.generate(tmp_path, 1, 8, AS_OF)
    accounts = read(tmp_path, "salesforce.account")
    assert {a["billing_country_code"] for a in accounts} == set(demo.COUNTRY_ORDER)
    assert {a["preferred_language_c"] for a in accounts} >= {"de", "fr", "en", "nl", "es",
                                                             "ja"}
    assert all(len(summary.bad_rows[kind]) == 1 for kind in demo.BAD_ROW_KINDS)
    printed = json.loads(json.dumps(summary.as_dict()))
    assert printed["accounts"] == 8
    assert printed["row_counts"]["salesforce.account"] == 8
    assert set(printed["bad_rows"]) == set(demo.BAD_ROW_KINDS)


def test_zero_accounts_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        demo.generate(tmp_path, 1, 0, AS_OF)


def expected_documents(landing: Path) -> dict[str, str]:
    """Path -> account name of every supporting document the landed CSVs call for.

    Contracts for enterprise customers; a statement of work for each invoiced New Business
    deal of an enterprise or mid-market account; a proof of delivery for each invoiced New
    Business order that bills both on-site services (onboarding package, training day).
    """
    accounts = {row["id"]: row for row in read(landing, "salesforce.account")}
    invoiced = {row["custom_salesforce_opportunity_id"]
                for row in read(landing, "quickbooks.invoice")} - {""}
    products: dict[str, set[str]] = defaultdict(set)
    for item in read(landing, "salesforce.opportunity_line_item"):
        products[item["opportunity_id"]].add(item["product_code"])
    expected = {}
    for account in accounts.values():
        if account["segment_c"] == "enterprise" and account["type"] == "Customer":
            path = f"accounts/{account['id']}/contracts/master-services-agreement.pdf"
            expected[path] = account["name"]
    for deal in read(landing, "salesforce.opportunity"):
        if deal["id"] not in invoiced or deal["type"] != "New Business":
            continue
        name = accounts[deal["account_id"]]["name"]
        if accounts[deal["account_id"]]["segment_c"] in ("enterprise", "mid_market"):
            expected[f"quotes/{deal['id']}/sow.pdf"] = name
        if {"ONB", "TRN-DAY"} <= products[deal["id"]]:
            expected[f"orders/{deal['id']}/proof-of-delivery.pdf"] = name
    return expected


def pdfs(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*.pdf")}


def test_attachments_option_files_documents_under_the_ids_the_invoices_carry(tmp_path):
    from pypdf import PdfReader

    landing, folder = tmp_path / "landing", tmp_path / "attachments"
    summary = demo.generate(landing, SEED, 12, AS_OF, attachments_dir=folder,
                            seller_name="Example Seller SE")
    expected = expected_documents(landing)
    assert {path.split("/")[0] for path in expected} == {"accounts", "quotes", "orders"}
    assert pdfs(folder) == set(expected)
    assert {kind: sorted(p.relative_to(folder).as_posix() for p in paths)
            for kind, paths in summary.documents.items()} == {
        "contract": sorted(p for p in expected if p.startswith("accounts/")),
        "statement_of_work": sorted(p for p in expected if p.startswith("quotes/")),
        "proof_of_delivery": sorted(p for p in expected if p.startswith("orders/")),
    }
    for path, account_name in expected.items():
        reader = PdfReader(folder / path)
        text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
        assert account_name in text, path
        assert "Example Seller SE" in text, path

    plain = demo.generate(tmp_path / "plain", SEED, 12, AS_OF)
    for first, second in zip(summary.files, plain.files, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_a_rerun_replaces_the_demo_documents_and_keeps_other_files(tmp_path):
    folder = tmp_path / "attachments"
    demo.generate(tmp_path / "first", SEED, 12, AS_OF, attachments_dir=folder)
    own = folder / "accounts" / "0015g0000000OWN" / "contracts" / "signed.pdf"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"%PDF-1.7 kept as it is")
    demo.generate(tmp_path / "second", 1, 8, AS_OF, attachments_dir=folder)
    expected = expected_documents(tmp_path / "second")
    assert pdfs(folder) == set(expected) | {own.relative_to(folder).as_posix()}
    assert own.read_bytes() == b"%PDF-1.7 kept as it is"
    assert not (folder / "orders").exists()  # the first run's folders went with their files

    again = tmp_path / "again"
    demo.generate(tmp_path / "third", 1, 8, AS_OF, attachments_dir=again)
    assert pdfs(again) == set(expected)
    for path in expected:
        assert (again / path).read_bytes() == (folder / path).read_bytes(), path
