"""The portal's test world: the collections warehouse with documents, and a running portal.

`portal_world(tmp_path_factory)` is built once per session from `built_warehouse()` (no
dbt run of its own): a copy of the warehouse in which

- INV-A1 and INV-B1 have rendered PDFs (the real renderer, once) in the document manifest,
  and INV-A1 an e-invoice XML in the e-invoice manifest;
- INV-A1 carries the customer's PO number `PO-2026-17`, INV-A2 the PO number
  `<script>alert(1)</script>&` and a memo with markup (for the escaping tests);
- the portal store holds INV-A1's PDF and an attachment named `Lieferschein "März".txt`
  (per-invoice link `world.links["INV-A1"]`), and INV-B1's PDF (`world.links["INV-B1"]`).

Accounts, hand-computed from tests/collections_support.py at 15 March 2026:

- Alpha Tools GmbH (de): open INV-A1 1190.00 (3 days overdue), INV-A2 500.00 (due
  today), INV-A3 250.50 (1 day overdue); INV-A4 paid; CN-A1 100.00 unused. Open invoices
  1940.50, balance 1840.50, overdue 1440.50. Billing addresses: anna.berg@alpha-tools.example
  (CRM billing contact ct1) and ap@alpha-tools.example (ERP).
- Beta Foods Ltd (en): INV-B1 400.00, INV-B2 600.00 (disputed); balance 1000.00, all
  overdue. ap@beta-foods.example.
- Gamma Retail Inc (en): INV-C1 800.00, INV-C2 200.00; balance 1000.00.

`start_portal(settings)` runs the app with uvicorn on 127.0.0.1 (a port the OS picks) in a
thread; `PortalClient` is a requests session that knows the CSRF token of the last page.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path

import duckdb
import requests
import uvicorn
from collections_support import AS_OF, built_warehouse

from q2c.content.registry import load_registry
from q2c.delivery.portal import PortalStore
from q2c.documents.load import load_invoice_documents
from q2c.documents.pool import record_manifest, render_to_store
from q2c.documents.render import pdf_renderer, resolve_content
from q2c.settings import Seller, Settings
from q2c.warehouse import OPS_DDL

ALPHA = "Alpha Tools GmbH"
BETA = "Beta Foods Ltd"
GAMMA = "Gamma Retail Inc"
ALPHA_CONTACT = "anna.berg@alpha-tools.example"
ALPHA_ERP_ADDRESS = "ap@alpha-tools.example"
BETA_ADDRESS = "ap@beta-foods.example"
GAMMA_ADDRESS = "ap@gamma-retail.example"
SCRIPT_PO = "<script>alert(1)</script>&"
MEMO = '<img src=x onerror="alert(2)"> Thanks & "regards"'
ATTACHMENT_NAME = 'Lieferschein "März".txt'
EINVOICE_XML = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">'
                b"<ID>INV-A1</ID></Invoice>\n")


@dataclass
class PortalWorld:
    folder: Path
    warehouse: Path
    documents_dir: Path
    einvoice_dir: Path
    portal_dir: Path
    account_keys: dict[str, str]
    invoice_ids: dict[str, str]
    links: dict[str, str] = field(default_factory=dict)
    pdfs: dict[str, bytes] = field(default_factory=dict)

    def settings(self, home: Path, **changes: object) -> Settings:
        """Settings of one test: its own home and ops store, this world's warehouse."""
        home.mkdir(parents=True, exist_ok=True)
        values = dict(
            home=home, landing_dir=home / "landing", warehouse_path=self.warehouse,
            documents_dir=self.documents_dir, outbox_dir=home / "outbox",
            dagster_home=home / "dagster", ops_store_path=home / "ops.sqlite",
            einvoice_outbound=str(self.einvoice_dir), portal_dir=self.portal_dir,
            as_of=AS_OF, mail_channel="eml", attachments_location=str(home / "attachments"),
        )
        values.update(changes)
        return Settings(**values)


_WORLD: dict[str, PortalWorld] = {}


def portal_world(tmp_path_factory) -> PortalWorld:
    """The session's portal world (built once; see the module docstring)."""
    if "world" not in _WORLD:
        built = built_warehouse(tmp_path_factory.mktemp)
        _WORLD["world"] = _build(tmp_path_factory.mktemp("portal-world"), built)
    return _WORLD["world"]


def _build(folder: Path, built) -> PortalWorld:
    warehouse = built.copy_to(folder)
    documents_dir = folder / "documents"
    einvoice_dir = folder / "edi-outbound"
    portal_dir = folder / "portal"
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute(OPS_DDL)
        conn.execute("update core.fct_invoices set po_number = 'PO-2026-17'"
                     " where invoice_number = 'INV-A1'")
        conn.execute("update core.fct_invoices set po_number = ?, customer_memo = ?"
                     " where invoice_number = 'INV-A2'", [SCRIPT_PO, MEMO])
        accounts = dict(conn.execute(
            "select account_name, account_key from core.dim_accounts").fetchall())
        invoices = dict(conn.execute(
            "select invoice_number, invoice_id from core.fct_invoices").fetchall())
        pdfs = _render(conn, [invoices["INV-A1"], invoices["INV-B1"]], documents_dir)
        einvoice = einvoice_dir / "INV-A1.xml"
        einvoice.parent.mkdir(parents=True, exist_ok=True)
        einvoice.write_bytes(EINVOICE_XML)
        conn.execute(
            "insert into q2c_ops.einvoice_manifest (document_id, invoice_id, invoice_number,"
            " format, path, created_at) values ('ei-a1', ?, 'INV-A1', 'ubl', ?, ?)",
            [invoices["INV-A1"], str(einvoice), dt.datetime(2026, 2, 10, 9)])
    world = PortalWorld(folder, warehouse, documents_dir, einvoice_dir, portal_dir,
                        accounts, invoices, pdfs=pdfs)
    store = PortalStore(portal_dir)
    for number, account in (("INV-A1", ALPHA), ("INV-B1", BETA)):
        published = store.publish(
            accounts[account], number, pdfs[number], f"{number}.pdf",
            f"portal-{number.lower()}-0001", invoice_id=invoices[number],
            document_id=f"doc-{number}")
        world.links[number] = published.token
    store.publish(accounts[ALPHA], "INV-A1", b"Geliefert am 9. Februar.\n",
                  ATTACHMENT_NAME, "portal-inv-a1-attachment-01",
                  invoice_id=invoices["INV-A1"], document_id="att-INV-A1",
                  content_type="text/plain")
    return world


def _render(conn, invoice_ids: list[str], out_dir: Path) -> dict[str, bytes]:
    """Render the invoices' PDFs with the real renderer and record them in the manifest."""
    registry = load_registry()
    used = resolve_content(registry, on=AS_OF)
    documents = load_invoice_documents(conn, invoice_ids, Seller())
    rendered = [render_to_store(doc, registry, pdf_renderer(), used, out_dir)
                for doc in documents]
    record_manifest(conn, rendered, "portal-tests", dt.datetime(2026, 2, 14, 8))
    return {doc.invoice_number: Path(doc.path).read_bytes() for doc in rendered}


# A running portal ----------------------------------------------------------------------------

@dataclass
class RunningPortal:
    base_url: str
    app: object
    server: uvicorn.Server
    thread: threading.Thread
    settings: Settings

    def client(self, **headers: str) -> PortalClient:
        return PortalClient(self.base_url, headers)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def start_portal(settings_for, *, mailer=None, secret: bytes | None = None,
                 warehouse: str = "duckdb") -> RunningPortal:
    """Start the portal; `settings_for(base_url)` gives its settings (the port is known
    only once the socket is bound, and the base URL names it)."""
    from q2c.portal.app import create_app

    sock = free_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = settings_for(base_url)
    app = create_app(settings, mailer=mailer, secret=secret, warehouse=warehouse)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the portal did not start on {base_url}")
        time.sleep(0.02)
    return RunningPortal(base_url, app, server, thread, settings)


_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


class PortalClient:
    """A browser-like session: cookies, no redirects followed unless asked, CSRF token of
    the last HTML page it saw."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self.csrf: str | None = None

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base_url + path

    def get(self, path: str, follow: bool = True, **kwargs) -> requests.Response:
        response = self.session.get(self.url(path), allow_redirects=follow, timeout=30,
                                    **kwargs)
        self._remember(response)
        return response

    def post(self, path: str, data: dict | None = None, follow: bool = False,
             csrf: bool = True, **kwargs) -> requests.Response:
        form = dict(data or {})
        if csrf:
            if self.csrf is None:
                self.get("/sign-in")
            form.setdefault("csrf_token", self.csrf)
        response = self.session.post(self.url(path), data=form, allow_redirects=follow,
                                     timeout=30, **kwargs)
        self._remember(response)
        return response

    def _remember(self, response: requests.Response) -> None:
        found = _CSRF.search(response.text or "") if "html" in response.headers.get(
            "content-type", "") else None
        if found:
            self.csrf = found.group(1)


def wait_for_mail(smtp_server, count: int = 1, timeout: float = 15.0) -> list:
    """The messages the test SMTP server received, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while len(smtp_server.messages) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} mail(s), got {len(smtp_server.messages)}")
        time.sleep(0.05)
    return list(smtp_server.messages)


def mail_text(received) -> str:
    message = BytesParser(policy=policy.default).parsebytes(received.content)
    return message.get_body(("plain",)).get_content()


def sign_in_links(text: str) -> list[str]:
    return re.findall(r"https?://[^\s]+/sign-in/link/[A-Za-z0-9_-]{43}", text)


def sign_in_codes(text: str) -> list[str]:
    return re.findall(r"\b(\d{8})\b", text)


def smtp_settings(smtp_server) -> dict:
    return {"mail_channel": "smtp", "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port}


def sign_in(portal: RunningPortal, smtp_server, address: str,
            client: PortalClient | None = None) -> PortalClient:
    """Sign in by magic link as `address` (the first account in its mail)."""
    client = client or portal.client()
    before = len(smtp_server.messages)
    client.get("/sign-in")
    answer = client.post("/sign-in", {"email": address})
    assert answer.status_code == 303, answer.text
    mail = wait_for_mail(smtp_server, before + 1)[-1]
    link = sign_in_links(mail_text(mail))[0]
    client.get(link)
    done = client.post(link)
    assert done.status_code == 303 and done.headers["location"] == "/invoices", done.text
    client.get("/invoices")  # the session's own CSRF token, as a browser would have it
    return client


def public_ids(html: str) -> dict[str, str]:
    """Invoice number -> public id, from an invoice list page."""
    return {number: public for public, number in
            re.findall(r'href="/invoices/([A-Za-z0-9_-]{22})">([^<]+)</a>', html)}


CORE_TABLES = ("dim_accounts", "fct_invoices", "fct_invoice_lines", "fct_invoice_tax_lines",
               "fct_credit_notes", "fct_payments", "fct_payment_allocations")
# Copied too where the warehouse has them (q2c's balances: `q2c_balances_warehouse`).
CASH_TABLES = ("fct_invoice_balances", "fct_cash_applications")


def copy_core_to_postgres(world: PortalWorld, pg_conn, warehouse: Path | None = None) -> None:
    """The core tables the portal reads, copied into schema `core` of a Postgres database
    with the column types `push_to_postgres` uses (what a dbt build there would leave)."""
    from q2c.warehouse_postgres import postgres_type

    source = warehouse or world.warehouse
    with duckdb.connect(str(source), read_only=True) as duck, pg_conn.cursor() as cur:
        cur.execute("create schema if not exists core")
        present = {row[0] for row in duck.execute(
            "select table_name from information_schema.tables where table_schema = 'core'"
        ).fetchall()}
        for table in CORE_TABLES + tuple(t for t in CASH_TABLES if t in present):
            columns = duck.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = 'core' and table_name = ? order by ordinal_position",
                [table]).fetchall()
            cur.execute(f"create table core.{table} ("
                        + ", ".join(f'"{name}" {postgres_type(kind, table)}'
                                    for name, kind in columns) + ")")
            rows = duck.execute(f"select * from core.{table}").fetchall()
            marks = ", ".join(["%s"] * len(columns))
            cur.executemany(f"insert into core.{table} values ({marks})", rows)
    pg_conn.commit()


# q2c's own balances -------------------------------------------------------------------------

_BALANCES: dict[str, Path] = {}
PORTAL_CHARGES = {"INV-A3": ("ch_portalA3", "pi_portalA3", "250.50"),
                  "INV-A1": ("ch_portalA1", "pi_portalA1", "190.00")}


def q2c_balances_warehouse(world: PortalWorld, tmp_path_factory) -> Path:
    """A copy of the world's warehouse as the nightly leaves it once it has allocated two
    portal payments the ERP has not booked yet (made once per session).

    The cash models' tables are written by hand, by their rules (fct_invoice_balances:
    total less payments less credit notes applied, never below 0): the ERP's allocations
    (INV-A3 49.50, INV-A4 100.00) plus two Stripe charges of the portal (account unknown to
    Stripe), allocated by q2c on 14 March: ch_portalA3 250.50 to INV-A3 and ch_portalA1
    190.00 to INV-A1. q2c's balances: INV-A1 1190.00 - 190.00 = 1000.00 (partially paid),
    INV-A3 300.00 - 49.50 - 250.50 = 0.00 (paid); the others as the ERP has them.
    fct_invoices keeps the ERP's balances (INV-A1 1190.00, INV-A3 250.50).
    """
    if "warehouse" in _BALANCES:
        return _BALANCES["warehouse"]
    warehouse = tmp_path_factory.mktemp("portal-balances") / "warehouse.duckdb"
    shutil.copyfile(world.warehouse, warehouse)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute(
            "create table core.fct_cash_applications as select a.allocation_key as"
            " application_key, a.source_system, a.payment_key, a.invoice_key,"
            " a.credit_note_key, i.account_key, a.currency, a.amount, a.allocation_type,"
            " 'erp_application' as allocation_rule, a.allocation_date as allocated_on,"
            " true as is_erp_recorded, a.allocation_key as source_allocation_key"
            " from core.fct_payment_allocations a"
            " join core.fct_invoices i on a.invoice_key = i.invoice_key")
        for number, (charge, intent, amount) in PORTAL_CHARGES.items():
            key = f"stripe-{charge}"
            conn.execute(
                "insert into core.fct_payments (payment_key, payment_id, source_system,"
                " source_id, payment_date, currency, amount, unapplied_amount, fee_amount,"
                " payment_method, payment_channel, reference_number, amount_reporting)"
                " values (?, ?, 'stripe', ?, date '2026-03-14', 'EUR', ?, 0, 0, 'card',"
                " 'portal', ?, ?)", [key, charge, charge, amount, intent, amount])
            conn.execute(
                "insert into core.fct_cash_applications select ?, 'stripe', ?, invoice_key,"
                " null, account_key, 'EUR', ?, 'payment', 'remittance_reference',"
                " date '2026-03-14', false, null from core.fct_invoices"
                " where invoice_number = ?", [f"q2c-{charge}", key, amount, number])
        conn.execute(_BALANCES_SQL)
    _BALANCES["warehouse"] = warehouse
    return warehouse


_BALANCES_SQL = """
create table core.fct_invoice_balances as
with summed as (
    select invoice_key,
        sum(case when allocation_type in ('payment', 'refund', 'chargeback')
            then amount end) as paid,
        sum(case when allocation_type = 'credit_note' then amount end) as credited,
        sum(case when allocation_type = 'payment' and not is_erp_recorded
            then amount end) as by_q2c,
        count(*) as applications, max(allocated_on) as last_allocation_date
    from core.fct_cash_applications where allocation_type <> 'fee' group by invoice_key
), joined as (
    select i.*, coalesce(s.paid, 0) as paid, coalesce(s.credited, 0) as credited,
        coalesce(s.by_q2c, 0) as by_q2c, coalesce(s.applications, 0) as applications,
        s.last_allocation_date,
        i.total_amount - coalesce(s.paid, 0) - coalesce(s.credited, 0) as unsettled
    from core.fct_invoices i left join summed s on i.invoice_key = s.invoice_key
)
select invoice_key, source_system, invoice_id, invoice_number, account_key, currency,
    cast(total_amount as decimal(20, 4)) as total_amount,
    cast(paid as decimal(20, 4)) as paid_amount,
    cast(credited as decimal(20, 4)) as credited_amount,
    cast(greatest(unsettled, 0) as decimal(20, 4)) as balance_amount,
    cast(greatest(-unsettled, 0) as decimal(20, 4)) as overpaid_amount,
    cast(balance_amount as decimal(20, 4)) as erp_balance_amount,
    cast(greatest(unsettled, 0) - balance_amount as decimal(20, 4)) as balance_difference,
    cast(by_q2c as decimal(20, 4)) as allocated_by_q2c_amount,
    case
        when unsettled <= 0 and credited > 0 and paid <= 0 then 'credited'
        when unsettled <= 0 then 'paid'
        when paid + credited > 0 then 'partially_paid'
        else 'open'
    end as settlement_status,
    cast(applications as integer) as application_count, issue_date, due_date,
    last_allocation_date
from joined
"""


# A warehouse with a second ERP ------------------------------------------------------------

_TWO_ERPS: dict[str, Path] = {}
SECOND_ERP = "netsuite"
SECOND_ERP_PDF = b"%PDF-1.4\n% Gamma Retail's invoice from the second ERP\n%%EOF\n"


def two_erp_warehouse(world: PortalWorld, tmp_path_factory) -> Path:
    """A copy of the world's warehouse in which a second ERP (netsuite) gave one of Gamma's
    invoices the id and number of Alpha's INV-A1 (made once per session).

    Gamma's netsuite invoice is INV-C1's row under source_system `netsuite`, invoice_id
    `a1`, number `INV-A1` and invoice_key md5('netsuite|a1'): 800.00 EUR open. The
    document manifest has its PDF (`SECOND_ERP_PDF`, rendered 1 March 2026, newer than
    Alpha's of 14 February) under `a1` / `INV-A1`, as the renderer records every file: by
    the ERP's id and number, without the ERP. Alpha's INV-A1 (quickbooks, `a1`) is as in
    the world, with its PDF and e-invoice in the manifests.
    """
    if "warehouse" in _TWO_ERPS:
        return _TWO_ERPS["warehouse"]
    folder = tmp_path_factory.mktemp("portal-two-erps")
    warehouse = folder / "warehouse.duckdb"
    shutil.copyfile(world.warehouse, warehouse)
    pdf = world.documents_dir / SECOND_ERP / "INV-A1-gamma.pdf"
    pdf.parent.mkdir(parents=True, exist_ok=True)
    pdf.write_bytes(SECOND_ERP_PDF)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("create temp table second as select * from core.fct_invoices"
                     " where invoice_number = 'INV-C1'")
        conn.execute("update second set source_system = ?, invoice_id = 'a1', source_id = 'a1',"
                     " invoice_number = 'INV-A1', invoice_key = md5(? || '|a1')",
                     [SECOND_ERP, SECOND_ERP])
        conn.execute("insert into core.fct_invoices select * from second")
        conn.execute(
            "insert into q2c_ops.document_manifest (document_id, invoice_id, invoice_number,"
            " path, rendered_at) values ('netsuite-a1', 'a1', 'INV-A1', ?, ?)",
            [str(pdf), dt.datetime(2026, 3, 1, 8)])
    _TWO_ERPS["warehouse"] = warehouse
    return warehouse
