"""Deterministic demo data: Salesforce and QuickBooks tables the way Fivetran lands them.

The demo and the tests need a quote-to-cash history that looks like a real seller's: accounts
in several countries, languages and currencies, deals that turn into invoices, invoices that
get paid, partly paid, credited, disputed or forgotten, and a handful of rows that are wrong
in the ways landed data is wrong. `generate` writes one CSV per raw table of
`q2c.sources.schema.RAW_TABLES` (every contract column, values as text the way Fivetran
writes them) and returns a `GenerationSummary` that says what it wrote, including every
deliberately bad row, so tests and the quality layer can count them.

Everything is drawn from one `random.Random(seed)` and the `as_of` date, never from the clock
or from hash order: the same arguments give byte-identical files. Money is Decimal quantized
to each currency's ISO 4217 minor units (JPY 0, EUR 2, KWD 3).
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import cache, cached_property
from pathlib import Path

from q2c.money import minor_units
from q2c.sources.schema import DEFAULT_TABLES as RAW_TABLES
from q2c.sources.schema import RawTable

log = logging.getLogger(__name__)

# Invoice states the generator plans; `GenerationSummary.invoices_by_state` counts them.
PAID = "paid"
PARTIALLY_PAID = "partially_paid"
OVERDUE = "overdue"
CURRENT = "current"
CREDITED = "credited"
DISPUTED = "disputed"
STATES = (PAID, PARTIALLY_PAID, OVERDUE, CURRENT, CREDITED, DISPUTED)

# How a Salesforce account is linked to its QuickBooks customer (the dim_accounts match_method).
EXTERNAL_ID = "external_id"
TAX_ID = "tax_id"
NAME_DOMAIN = "name_domain"
ERP_ONLY = "erp_only"
CRM_ONLY = "crm_only"

# Invoices issued this many days before the as-of date are still waiting to be emailed
# (QuickBooks email_status NeedToSend); older ones were emailed by the ERP or printed.
AWAITING_EMAIL_DAYS = 14

# Kinds of deliberately bad rows; `GenerationSummary.bad_rows` is keyed by these.
INVALID_CURRENCY = "invalid_currency"
DUE_BEFORE_ISSUE = "due_before_issue"
TOTAL_MISMATCH = "total_mismatch"
UNPARSEABLE_LINE_AMOUNT = "unparseable_line_amount"
MISSING_KEY = "missing_key"
DUPLICATE_KEY = "duplicate_key"
ORPHAN_PAYMENT_LINE = "orphan_payment_line"
ODD_TIMESTAMP = "odd_timestamp"
MISSING_AMOUNT = "missing_amount"
SOFT_DELETED = "soft_deleted"
BAD_INVOICE_KINDS = (
    INVALID_CURRENCY, DUE_BEFORE_ISSUE, TOTAL_MISMATCH, UNPARSEABLE_LINE_AMOUNT, MISSING_KEY,
    DUPLICATE_KEY, SOFT_DELETED,
)
BAD_ROW_KINDS = BAD_INVOICE_KINDS + (ORPHAN_PAYMENT_LINE, ODD_TIMESTAMP, MISSING_AMOUNT)

HOME_CURRENCY = "EUR"
# Product lines per invoice (before subtotal and discount lines), drawn evenly in this range.
DEFAULT_LINES_PER_INVOICE = (1, 5)
SELLER_DOMAIN = "northwind.example"

# --------------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    name: str
    postal_code: str
    region: str = ""
    tax_percent: str | None = None  # US sales tax differs by state


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    language: str
    currency: str
    tax_percent: str
    phone_prefix: str
    cities: tuple[City, ...]
    streets: tuple[str, ...]
    street_format: str  # `{street}` and `{number}`
    company_bases: tuple[str, ...]
    company_words: tuple[str, ...]
    legal_forms: tuple[str, ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    tax_id_format: str  # `#` is a digit; empty when the country has no VAT id
    customer_memo: str


def _t(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split("|"))


COUNTRIES: dict[str, Country] = {
    c.code: c
    for c in (
        Country(
            "DE", "Germany", "de", "EUR", "19", "+49",
            (City("Berlin", "10117"), City("München", "80331"), City("Hamburg", "20095"),
             City("Köln", "50667"), City("Frankfurt am Main", "60311"),
             City("Stuttgart", "70173"), City("Leipzig", "04109")),
            _t("Friedrichstraße|Hauptstraße|Schillerstraße|Bahnhofstraße|Am Sandtorkai|"
               "Leopoldstraße|Königsallee"),
            "{street} {number}",
            _t("Brandt|Keller|Hofmann|Lindner|Weber|Vogel|Krüger|Schäfer|Nordlicht|Bergmann|"
               "Sonnenfeld|Rhein|Falke"),
            _t("Logistik|Maschinenbau|Software|Handel|Energie|Medizintechnik|Consulting|"
               "Verpackung|Elektronik"),
            _t("GmbH|AG|GmbH & Co. KG"),
            _t("Jürgen|Anna|Lukas|Sophie|Matthias|Katrin|Stefan|Lena|Jörg|Birgit"),
            _t("Müller|Schmidt|Schneider|Fischer|Becker|Wagner|Schulz|Hoffmann|Koch|Richter"),
            "DE#########",
            "Vielen Dank für Ihren Auftrag.",
        ),
        Country(
            "FR", "France", "fr", "EUR", "20", "+33",
            (City("Paris", "75008"), City("Lyon", "69002"), City("Marseille", "13001"),
             City("Toulouse", "31000"), City("Lille", "59000"), City("Nantes", "44000")),
            _t("rue de Rivoli|avenue des Champs-Élysées|rue de la République|"
               "boulevard Haussmann|quai des Chartrons|rue Nationale"),
            "{number} {street}",
            _t("Lefèvre|Moreau|Dubois|Garnier|Bonnet|Lumière|Azur|Rivage|Boréal|Chevalier"),
            _t("Logistique|Conseil|Industries|Distribution|Énergie|Informatique|Santé|"
               "Transports"),
            _t("SAS|SA|SARL"),
            _t("Camille|Hélène|Julien|Mathieu|Élodie|Nicolas|Sophie|François|Claire|Antoine"),
            _t("Martin|Bernard|Durand|Lefebvre|Moreau|Laurent|Simon|Michel|Garcia|Roux"),
            "FR###########",
            "Merci pour votre confiance.",
        ),
        Country(
            "NL", "Netherlands", "nl", "EUR", "21", "+31",
            (City("Amsterdam", "1017 AB"), City("Rotterdam", "3011 AD"),
             City("Utrecht", "3511 LX"), City("Eindhoven", "5611 EM"),
             City("Den Haag", "2511 BT")),
            _t("Keizersgracht|Herengracht|Coolsingel|Oudegracht|Stationsplein|Damrak"),
            "{street} {number}",
            _t("Van Dijk|De Vries|Bakker|Jansen|Visser|Smit|Oranje|Polder|Dijkstra|Mulder"),
            _t("Logistiek|Techniek|Groep|Handel|Installatie|Software|Energie"),
            _t("B.V.|N.V."),
            _t("Daan|Sanne|Joost|Femke|Pieter|Anouk|Bram|Lotte|Ruben|Eva"),
            _t("de Jong|Jansen|de Vries|van den Berg|Bakker|Visser|Smit|Meijer|de Boer|Mulder"),
            "NL#########B01",
            "Bedankt voor uw opdracht.",
        ),
        Country(
            "ES", "Spain", "es", "EUR", "21", "+34",
            (City("Madrid", "28013", "Madrid"), City("Barcelona", "08002", "Barcelona"),
             City("Valencia", "46002", "Valencia"), City("Sevilla", "41001", "Sevilla"),
             City("Bilbao", "48001", "Bizkaia")),
            _t("Calle de Alcalá|Gran Vía|Passeig de Gràcia|Calle Mayor|"
               "Avenida de la Constitución"),
            "{street} {number}",
            _t("García|Martínez|López|Sol|Ibérica|Mediterránea|Navarro|Castilla|Ruiz|Serrano"),
            _t("Logística|Consultores|Industrial|Distribuciones|Tecnología|Energía|"
               "Construcciones"),
            _t("S.L.|S.A."),
            _t("Lucía|Javier|María|Alejandro|Carmen|Pablo|Sofía|Sergio|Elena|Álvaro"),
            _t("García|Fernández|González|Rodríguez|López|Martínez|Sánchez|Pérez|"
               "Gómez|Muñoz"),
            "ESB########",
            "Gracias por su confianza.",
        ),
        Country(
            "GB", "United Kingdom", "en", "GBP", "20", "+44",
            (City("London", "EC1A 1BB"), City("Manchester", "M1 1AE"),
             City("Leeds", "LS1 4DY"), City("Bristol", "BS1 4ST"),
             City("Edinburgh", "EH1 1YZ")),
            _t("High Street|King's Road|Deansgate|Park Row|Queen Street|Victoria Street"),
            "{number} {street}",
            _t("Whitmore|Ashford|Harrington|Kingsley|Thames|Pennine|Ellis|Carver|Hawthorne|"
               "Sterling"),
            _t("Logistics|Engineering|Analytics|Holdings|Retail|Energy|Consulting|Systems"),
            _t("Ltd|plc|LLP"),
            _t("Oliver|Amelia|Harry|Isla|George|Emily|Jack|Charlotte|Thomas|Grace"),
            _t("Smith|Jones|Taylor|Brown|Williams|Wilson|Evans|Davies|O'Connor|Walker"),
            "GB#########",
            "Thank you for your business.",
        ),
        Country(
            "US", "United States", "en", "USD", "0", "+1",
            (City("San Francisco", "94105", "CA", "7.25"), City("New York", "10001", "NY", "8"),
             City("Austin", "78701", "TX", "6.25"), City("Seattle", "98101", "WA", "6.5"),
             City("Portland", "97204", "OR", "0"), City("Chicago", "60601", "IL", "6.25"),
             City("Boston", "02110", "MA", "6.25")),
            _t("Market Street|Broadway|Congress Avenue|Pine Street|Main Street|Michigan Avenue"),
            "{number} {street}",
            _t("Acme|Summit|Redwood|Liberty|Bluewater|Granite|Pioneer|Evergreen|Lakeshore|"
               "Cascade|Ironbridge|Silverline"),
            _t("Logistics|Software|Health|Manufacturing|Foods|Analytics|Energy|Systems|Labs"),
            _t("Inc.|LLC|Corp."),
            _t("James|Emma|Michael|Olivia|Robert|Ava|David|Mia|Daniel|Abigail"),
            _t("Johnson|Miller|Davis|Anderson|Thompson|Martinez|Clark|Lewis|Young|Hall"),
            "##-#######",
            "Thank you for your business.",
        ),
        Country(
            "JP", "Japan", "ja", "JPY", "10", "+81",
            (City("Tokyo", "100-0005", "Tokyo"), City("Osaka", "530-0001", "Osaka"),
             City("Yokohama", "220-0012", "Kanagawa"), City("Nagoya", "450-0002", "Aichi"),
             City("Fukuoka", "812-0011", "Fukuoka")),
            _t("Marunouchi|Umeda|Minatomirai|Meieki|Hakata-ekimae|Nishi-Shinjuku"),
            "{number} {street}",
            _t("Sakura|Fuji|Yamato|Asahi|Hikari|Kawasaki|Nippon|Tokai|Mirai|Aozora"),
            _t("Logistics|Electronics|Trading|Systems|Industries|Pharma|Robotics"),
            _t("K.K.|Co., Ltd."),
            _t("Haruto|Yui|Sota|Hina|Ren|Aoi|Yuto|Sakura|Kenji|Emi"),
            _t("Sato|Suzuki|Takahashi|Tanaka|Watanabe|Ito|Yamamoto|Nakamura|Kobayashi|Kato"),
            "T#############",
            "Thank you for your business.",
        ),
        Country(
            "KW", "Kuwait", "en", "KWD", "0", "+965",
            (City("Kuwait City", "13001"), City("Hawalli", "32001"), City("Salmiya", "22001"),
             City("Farwaniya", "81001")),
            _t("Street 12, Block 3|Gulf Road|Fahad Al-Salem Street|Salem Al-Mubarak Street"),
            "{street}, Building {number}",
            _t("Al-Dana|Gulf|Al-Rayan|Burgan|Al-Safat|Failaka|Al-Noor|Kuwait Pearl"),
            _t("Trading|Logistics|General Contracting|Petroleum Services|Holding|Technology"),
            _t("W.L.L.|K.S.C.C."),
            _t("Ahmad|Fatima|Yousef|Noura|Khaled|Mariam|Abdullah|Sara|Hamad|Dana"),
            _t("Al-Mutairi|Al-Ajmi|Al-Enezi|Al-Rashidi|Al-Kandari|Al-Shammari|Al-Otaibi|"
               "Al-Azmi"),
            "",
            "Thank you for your business.",
        ),
    )
}

# QuickBooks tax rate ids, one per (country, rate).
TAX_RATE_IDS = {
    key: str(number)
    for number, key in enumerate(dict.fromkeys(
        (c.code, Decimal(city.tax_percent or c.tax_percent))
        for c in COUNTRIES.values() for city in c.cities), start=1)
}

# Peppol EAS schemes for VAT numbers, by country (the participant id is scheme:VAT id).
PEPPOL_VAT_SCHEMES = {"DE": "9930", "FR": "9957", "NL": "9944", "ES": "9920"}

# US retailers and distributors that take ANSI X12 810s: profiles in q2c/x12/partners.yaml.
X12_DEMO_PARTNERS = ("bigbox-retail", "lakeside-distribution")

# The first accounts cycle through every country, so even a small demo has all of them.
COUNTRY_ORDER = ("DE", "US", "GB", "FR", "NL", "ES", "JP", "KW")
COUNTRY_WEIGHTS = (24, 22, 12, 12, 10, 8, 6, 6)

# Units of the home currency (EUR) one unit of each currency is worth, the ERP's exchange_rate.
RATE_TO_HOME = {
    "EUR": Decimal("1"), "USD": Decimal("0.9210"), "GBP": Decimal("1.1690"),
    "JPY": Decimal("0.006150"), "KWD": Decimal("2.9940"),
}


@dataclass(frozen=True)
class Product:
    code: str
    name: str
    category: str
    price_home: Decimal
    quantity_kind: str  # how a quantity is drawn: months, seats, hours, units


PRODUCTS = (
    Product("PLAT-STD", "Platform subscription, Standard", "Subscriptions", Decimal("490"),
            "months"),
    Product("PLAT-PRO", "Platform subscription, Professional", "Subscriptions",
            Decimal("1450"), "months"),
    Product("PLAT-ENT", "Platform subscription, Enterprise", "Subscriptions", Decimal("4900"),
            "months"),
    Product("SEAT", "User seat", "Subscriptions", Decimal("39"), "seats"),
    Product("CONN", "Connector pack", "Subscriptions", Decimal("250"), "months"),
    Product("STOR-1TB", "Additional storage, 1 TB", "Subscriptions", Decimal("85.50"),
            "months"),
    Product("SUP-PRM", "Premium support", "Services", Decimal("690"), "months"),
    Product("ONB", "Onboarding package", "Services", Decimal("3500"), "units"),
    Product("CONS-HR", "Consulting hour", "Services", Decimal("165"), "hours"),
    Product("TRN-DAY", "Training day", "Services", Decimal("1200"), "units"),
    Product("API-1M", "API calls, 1 million", "Usage", Decimal("12.75"), "usage"),
    Product("SSO", "Single sign-on add-on", "Subscriptions", Decimal("150"), "months"),
)
TIER_BY_SEGMENT = {"smb": "PLAT-STD", "mid_market": "PLAT-PRO", "enterprise": "PLAT-ENT"}
# An invoice lists each product once: its segment's platform tier and distinct extras.
MAX_LINES_PER_INVOICE = len(PRODUCTS) - len(TIER_BY_SEGMENT) + 1
RETIRED_PRODUCT = Product("LEG-RPT", "Legacy reporting add-on", "Subscriptions",
                          Decimal("99"), "months")


@dataclass(frozen=True)
class Term:
    id: str
    name: str
    due_days: int


TERMS = (Term("1", "Due on receipt", 0), Term("2", "Net 15", 15), Term("3", "Net 30", 30),
         Term("4", "Net 60", 60))
TERM_CHOICES = {  # segment -> (term ids, weights)
    "smb": (("1", "2", "3"), (2, 3, 5)),
    "mid_market": (("2", "3"), (2, 8)),
    "enterprise": (("3", "4"), (6, 4)),
}

SALES_REPS = _t("Hannah Becker|Marco Rossi|Chloe Martin|Liam O'Brien|Sven Larsen|Aiko Tanaka|"
                "Noah Fischer|Isabel Ortega|Ethan Brooks|Mila Novak|Omar Haddad|Julia Weiss")
INDUSTRIES = _t("Manufacturing|Technology|Retail|Healthcare|Transportation|Energy|Consulting|"
                "Construction|Financial Services")
SEGMENTS = (("smb", "mid_market", "enterprise"), (50, 35, 15))
OPEN_STAGES = _t("Prospecting|Qualification|Needs Analysis|Proposal/Price Quote|"
                 "Negotiation/Review")
DISPUTE_REASONS = (
    ("Quantity", "Seat count on invoice {doc} does not match our contract"),
    ("Pricing", "Unit price on invoice {doc} differs from the quote"),
    ("Service not delivered", "Invoice {doc} bills a service we have not received"),
    ("Duplicate", "Invoice {doc} looks like a duplicate of an earlier invoice"),
)

_SF_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue",
                       "ß": "ss"})

# --------------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadRow:
    """One deliberately bad row: where it is and what is wrong with it.

    `key` holds the row's key values in the order of the table's key columns (for an invoice
    line: invoice id, index). `invoice_id` and `doc_number` name the invoice concerned, when
    there is one, so a test can leave it out of the good invoices.
    """

    kind: str
    table: str
    key: tuple[str, ...]
    field: str
    value: str
    note: str
    invoice_id: str = ""
    doc_number: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind, "table": self.table, "key": list(self.key), "field": self.field,
            "value": self.value, "note": self.note, "invoice_id": self.invoice_id,
            "doc_number": self.doc_number,
        }


@dataclass(frozen=True)
class AccountLink:
    """How one CRM account and one ERP customer belong together (either side may be empty)."""

    account_id: str
    customer_id: str
    method: str


@dataclass
class GenerationSummary:
    """What `generate` wrote: files, row counts, invoice states, links and every bad row.

    `invoices_by_state` and `invoice_states` cover the good invoices only; the invoices that
    carry a bad-row kind are listed in `bad_rows` (and `bad_doc_numbers`) instead.
    """

    out_dir: Path
    seed: int
    accounts: int
    as_of: dt.date
    files: list[Path] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    invoices_by_state: dict[str, int] = field(default_factory=dict)
    invoice_states: dict[str, str] = field(default_factory=dict)
    bad_rows: dict[str, list[BadRow]] = field(default_factory=dict)
    links: list[AccountLink] = field(default_factory=list)
    soft_deleted: dict[str, list[str]] = field(default_factory=dict)
    unbilled_opportunity_ids: list[str] = field(default_factory=list)
    # Supporting documents by kind, when `generate` was given an attachments folder.
    documents: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def bad_invoice_ids(self) -> set[str]:
        """Ids of invoices that carry a bad-row kind (the empty id of MISSING_KEY too)."""
        return {row.invoice_id for kind in BAD_INVOICE_KINDS
                for row in self.bad_rows.get(kind, [])}

    @property
    def bad_doc_numbers(self) -> set[str]:
        return {row.doc_number for rows in self.bad_rows.values() for row in rows
                if row.doc_number}

    @property
    def match_methods(self) -> dict[str, int]:
        return dict(sorted(Counter(link.method for link in self.links).items()))

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view for printing; per-invoice states and links are counted, not listed."""
        return {
            "out_dir": str(self.out_dir),
            "seed": self.seed,
            "accounts": self.accounts,
            "as_of": self.as_of.isoformat(),
            "files": [str(path) for path in self.files],
            "row_counts": dict(self.row_counts),
            "invoices_by_state": dict(self.invoices_by_state),
            "match_methods": self.match_methods,
            "unbilled_opportunities": len(self.unbilled_opportunity_ids),
            "soft_deleted": {table: list(ids) for table, ids in self.soft_deleted.items()},
            "bad_rows": {kind: [row.as_dict() for row in rows]
                         for kind, rows in self.bad_rows.items()},
            "documents": {kind: [str(path) for path in paths]
                          for kind, paths in self.documents.items()},
        }


# --------------------------------------------------------------------------------------------
# Planned records (what the generator decides before it writes rows)
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)  # identity, not field-by-field comparison
class _Company:
    index: int
    country: Country
    city: City
    segment: str
    method: str
    name: str = ""
    display_name: str = ""  # the name as typed in the ERP
    base: str = ""
    domain: str = ""
    street: str = ""
    street_2: str = ""
    tax_id: str = ""
    language: str = ""
    parent: _Company | None = None
    account_id: str = ""
    customer_id: str = ""
    address_id: str = ""
    owner_id: str = ""
    term: Term = TERMS[2]
    payer: str = "punctual"
    billing_email: str = ""
    billing_first: str = ""
    billing_last: str = ""
    billing_contact_id: str = ""
    delivery: str = "Email"
    channel: str = ""  # the CRM's invoice delivery channel: edi, email, portal or empty
    einvoice_format: str = ""  # peppol_ubl, facturx or x12_810, for edi customers
    peppol_id: str = ""
    x12_partner: str = ""  # the trading-partner profile of an x12_810 customer
    email_opt_out: bool = False
    since: dt.date = dt.date(2020, 1, 1)
    prices: dict[str, Decimal] = field(default_factory=dict)

    @property
    def currency(self) -> str:
        return self.country.currency

    @property
    def tax_percent(self) -> Decimal:
        return Decimal(self.city.tax_percent or self.country.tax_percent)


@dataclass(eq=False)
class _Opportunity:
    company: _Company
    id: str
    close_date: dt.date
    stage: str
    kind: str
    invoices: list[_Invoice] = field(default_factory=list)
    products: list[tuple[Product, Decimal]] = field(default_factory=list)


@dataclass(eq=False)
class _Line:
    product: Product
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    description: str


@dataclass(eq=False)
class _Invoice:
    company: _Company
    opportunity: _Opportunity | None
    issue: dt.date
    term: Term
    lines: list[_Line]
    discount: Decimal
    discount_percent: Decimal | None
    subtotal_line: bool
    tax_percent: Decimal
    state: str = CURRENT
    bad_kind: str = ""
    id: str = ""
    doc_number: str = ""
    created: dt.datetime = dt.datetime(2020, 1, 1)
    updated: dt.datetime = dt.datetime(2020, 1, 1)
    paid: Decimal = Decimal(0)
    credited: Decimal = Decimal(0)
    pay_date: dt.date | None = None

    @property
    def currency(self) -> str:
        return self.company.currency

    @property
    def due(self) -> dt.date:
        return self.issue + dt.timedelta(days=self.term.due_days)

    @cached_property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def taxable(self) -> Decimal:
        return self.subtotal - self.discount

    @cached_property
    def tax(self) -> Decimal:
        return _money(self.taxable * self.tax_percent / 100, self.currency)

    @property
    def total(self) -> Decimal:
        return self.taxable + self.tax

    @property
    def balance(self) -> Decimal:
        return self.total - self.paid - self.credited

    @property
    def landed_balance(self) -> Decimal:
        """The balance the ERP row shows (one more on the TOTAL_MISMATCH invoice)."""
        return self.balance + (1 if self.bad_kind == TOTAL_MISMATCH else 0)


@dataclass(eq=False)
class _Payment:
    company: _Company
    date: dt.date
    lines: list[tuple[_Invoice | None, Decimal]]  # (invoice, amount); None: a credit memo line
    unapplied: Decimal = Decimal(0)
    credit_memo: _CreditMemo | None = None
    orphan_invoice_id: str = ""
    id: str = ""


@dataclass(eq=False)
class _CreditMemo:
    company: _Company
    date: dt.date
    invoice: _Invoice | None
    total: Decimal
    tax: Decimal
    remaining: Decimal
    id: str = ""
    doc_number: str = ""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


@cache
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def _money(value: Decimal, currency: str) -> Decimal:
    """`value` rounded half-up to the currency's minor units (the rule of `q2c.money.Money`)."""
    return value.quantize(_quantum(currency), rounding=ROUND_HALF_UP)


def _text(value: Decimal) -> str:
    """A Decimal as plain text, never in exponent notation."""
    return f"{value:f}"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _ts(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return folded.encode("ascii", "ignore").decode()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", _ascii(text).lower()).strip("-")


def _base62(number: int, width: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    return digits.rjust(width, "0")


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce id with its real case-checksum suffix.

    The suffix encodes, for each 5-character block of the 15-character id, which characters
    are upper case; tools that compare ids case-insensitively rely on it.
    """
    base = f"{prefix}5g0{_base62(number, 9)}"
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(base[start:start + 5]) if "A" <= ch <= "Z")
        suffix += _SF_CHECKSUM[bits]
    return base + suffix


def _month_rate(currency: str, day: dt.date) -> Decimal:
    """The exchange rate to the home currency, drifting a little from month to month."""
    if currency == HOME_CURRENCY:
        return Decimal(1)
    drift = Decimal((day.year * 12 + day.month) % 7 - 3) / 400
    return (RATE_TO_HOME[currency] * (1 + drift)).quantize(Decimal("0.000001"))


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------


class _Generator:
    """Plans companies, deals, invoices and cash, then turns them into Fivetran-shaped rows."""

    def __init__(self, seed: int, accounts: int, as_of: dt.date,
                 lines_per_invoice: tuple[int, int] = DEFAULT_LINES_PER_INVOICE) -> None:
        self.rng = random.Random(seed)
        self.lines_per_invoice = lines_per_invoice
        self.seed = seed
        self.accounts = accounts
        self.as_of = as_of
        self.first_day = as_of - dt.timedelta(days=364)
        self.counters: Counter[str] = Counter()
        self.rows: dict[str, list[dict[str, str]]] = {
            f"{t.source}.{t.name}": [] for t in RAW_TABLES
        }
        self.companies: list[_Company] = []
        self.opportunities: list[_Opportunity] = []
        self.invoices: list[_Invoice] = []
        self.payments: list[_Payment] = []
        self.credit_memos: list[_CreditMemo] = []
        self.cases: list[tuple[_Company, _Invoice | None, dict[str, str]]] = []
        self.bad_rows: dict[str, list[BadRow]] = {}
        self.soft_deleted: dict[str, list[str]] = {}
        self.domains: set[str] = set()
        self.user_ids: list[str] = []
        self.balances: dict[int, Decimal] = {}

    # ---- ids, dates, times -----------------------------------------------------------------

    def next_number(self, name: str, start: int) -> int:
        self.counters[name] += 1
        return start + self.counters[name] - 1

    def sf_id(self, prefix: str) -> str:
        return salesforce_id(prefix, self.next_number(prefix, 1001))

    def at(self, day: dt.date) -> dt.datetime:
        """A business-hours moment on `day`."""
        seconds = self.rng.randrange(7 * 3600, 19 * 3600)
        return dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds)

    def synced(self) -> str:
        """When the nightly sync picked the row up: early on the `as_of` day."""
        moment = dt.datetime.combine(self.as_of, dt.time(1)) + dt.timedelta(
            seconds=self.rng.randrange(0, 3600))
        return _ts(moment)

    def days(self, low: int, high: int) -> dt.timedelta:
        return dt.timedelta(days=self.rng.randint(low, high))

    def before_as_of(self, day: dt.date) -> dt.date:
        return min(day, self.as_of - dt.timedelta(days=1))

    # ---- companies -------------------------------------------------------------------------

    def plan_companies(self) -> None:
        """Decide every company's country, segment and CRM/ERP link before naming them."""
        rng = self.rng
        for index in range(self.accounts):
            code = (COUNTRY_ORDER[index] if index < len(COUNTRY_ORDER)
                    else rng.choices(COUNTRY_ORDER, COUNTRY_WEIGHTS)[0])
            country = COUNTRIES[code]
            segment = rng.choices(*SEGMENTS)[0]
            self.companies.append(
                _Company(index, country, rng.choice(country.cities), segment, EXTERNAL_ID))
        self._assign_link_methods()
        parents: list[_Company] = []
        for company in self.companies:
            parent = self._pick_parent(company, parents)
            self._describe(company, parent)
            if company.segment == "enterprise" and parent is None and company.method != CRM_ONLY:
                parents.append(company)
        for number in range(max(2, self.accounts // 100)):
            code = COUNTRY_ORDER[number % len(COUNTRY_ORDER)]
            country = COUNTRIES[code]
            company = _Company(self.accounts + number, country, rng.choice(country.cities),
                               "smb", ERP_ONLY)
            self._describe(company, None)
            self.companies.append(company)

    def _assign_link_methods(self) -> None:
        """Most accounts carry the customer id; some only the VAT id, a few only name and domain.

        Small demos (under ten accounts) link everything by external id; the ERP-only
        customers are always added.
        """
        if self.accounts < 10:
            return
        pool = list(range(1, self.accounts))  # account 0 always links by external id
        self.rng.shuffle(pool)
        counts = (
            (TAX_ID, max(1, round(self.accounts * 0.10))),
            (NAME_DOMAIN, max(1, round(self.accounts * 0.04))),
            (CRM_ONLY, max(1, self.accounts // 100)),
        )
        for method, count in counts:
            chosen = [i for i in pool if method != TAX_ID
                      or self.companies[i].country.tax_id_format][:count]
            for i in chosen:
                self.companies[i].method = method
                pool.remove(i)

    def _pick_parent(self, company: _Company, candidates: list[_Company]) -> _Company | None:
        """About one account in twelve belongs to an earlier enterprise account."""
        if company.method == CRM_ONLY or not candidates or self.rng.random() >= 0.08:
            return None
        return self.rng.choice(candidates)

    def _describe(self, company: _Company, parent: _Company | None) -> None:
        """Name, domain, address, tax id, billing contact and commercial terms of a company."""
        rng, country = self.rng, company.country
        company.parent = parent
        company.name, company.base, company.domain = self._company_name(company, parent)
        number = str(rng.randint(1, 180))
        if country.code == "JP":  # chome-banchi-go
            number = f"{rng.randint(1, 9)}-{rng.randint(1, 20)}-{rng.randint(1, 30)}"
        company.street = country.street_format.format(
            street=rng.choice(country.streets), number=number)
        company.street_2 = rng.choice(("", "", "", "Suite 200", "3rd floor", "Building B"))
        company.tax_id = "".join(str(rng.randint(0, 9)) if ch == "#" else ch
                                 for ch in country.tax_id_format)
        company.language = country.language
        if country.code in ("NL", "DE", "ES") and rng.random() < 0.12:
            company.language = "en"
        company.billing_first = rng.choice(country.first_names)
        company.billing_last = rng.choice(country.last_names)
        mailbox = rng.choice(("ap", "ap", "ap", "invoices", "billing", "person"))
        if mailbox == "person":
            mailbox = _slug(f"{company.billing_first}.{company.billing_last}").replace("-", ".")
        company.billing_email = f"{mailbox}@{company.domain}"
        term_ids, weights = TERM_CHOICES[company.segment]
        term_id = rng.choices(term_ids, weights)[0]
        company.term = next(t for t in TERMS if t.id == term_id)
        company.payer = rng.choices(("punctual", "late", "slow"), (50, 35, 15))[0]
        company.delivery = rng.choices(("Email", "Print", "None"), (88, 7, 5))[0]
        company.since = self.first_day - self.days(120, 1400)
        company.prices = {p.code: self._price(p, company.currency) for p in PRODUCTS}
        self._choose_channel(company)

    def _choose_channel(self, company: _Company) -> None:
        """The CRM's delivery channel, Peppol id and email consent of a company.

        Drawn from a generator of its own, so adding these fields left every other value of
        a seeded demo as it was. EU business customers with a VAT id are the ones that take
        e-invoices: Peppol UBL through an access point, or Factur-X (DE and FR); larger US
        customers take ANSI X12 810s through a trading-partner profile.
        """
        rng = random.Random(f"{self.seed}-channel-{company.index}")
        scheme = PEPPOL_VAT_SCHEMES.get(company.country.code)
        takes_edi = (scheme and company.tax_id and company.method != CRM_ONLY
                     and company.segment != "smb")
        takes_x12 = (company.country.code == "US" and company.method != CRM_ONLY
                     and company.segment != "smb")
        roll = rng.random()
        if takes_edi and roll < 0.5:
            company.channel = "edi"
            company.peppol_id = f"{scheme}:{company.tax_id}"
            facturx = company.country.code in ("DE", "FR") and rng.random() < 0.35
            company.einvoice_format = "facturx" if facturx else "peppol_ubl"
        elif takes_x12 and roll < 0.5:
            company.channel = "edi"
            company.einvoice_format = "x12_810"
            company.x12_partner = rng.choice(X12_DEMO_PARTNERS)
        elif roll > 0.9:
            company.channel = "portal"
        elif roll > 0.6:
            company.channel = "email"
        company.email_opt_out = rng.random() < 0.04

    def _company_name(self, company: _Company, parent: _Company | None) -> tuple[str, str, str]:
        """A unique company name and web domain, built from the country's word lists."""
        rng, country = self.rng, company.country
        form = rng.choice(country.legal_forms)
        if parent is not None:
            place = country.name if country is not parent.country else company.city.name
            base = f"{parent.base} {place}"
            domain = f"{_slug(parent.base)}-{_slug(place)}.example"
        else:
            for attempt in range(40):
                base = f"{rng.choice(country.company_bases)} {rng.choice(country.company_words)}"
                if attempt >= 20:
                    base = f"{base} {rng.choice(country.cities).name}"
                domain = f"{_slug(base)}.example"
                if domain not in self.domains:
                    break
        while domain in self.domains:
            base = f"{base} {self.next_number('name-' + base, 2)}"
            domain = f"{_slug(base)}.example"
        self.domains.add(domain)
        return f"{base} {form}", base, domain

    def _price(self, product: Product, currency: str) -> Decimal:
        return _money(product.price_home / RATE_TO_HOME[currency], currency)

    # ---- deals and invoices ----------------------------------------------------------------

    def plan_deals(self) -> None:
        """Per customer: 3 to 7 invoices over the last year, billed from closed-won deals."""
        for company in self.companies:
            if company.method != CRM_ONLY:
                self._plan_billed(company)
            if company.method == ERP_ONLY:
                continue
            self._plan_pipeline(company)

    def _plan_billed(self, company: _Company) -> None:
        rng = self.rng
        count = rng.choices((3, 4, 5, 6, 7), (1, 2, 3, 3, 1))[0]
        offsets = sorted(rng.sample(range(364), count))
        issue_days = [self.first_day + dt.timedelta(days=d) for d in offsets]
        invoices = [self._plan_invoice(company, day) for day in issue_days]
        self.invoices.extend(invoices)
        if company.method == ERP_ONLY:
            return
        groups = rng.randint(1, min(3, count))
        cuts = sorted(rng.sample(range(1, count), groups - 1)) if groups > 1 else []
        for number, (start, stop) in enumerate(zip([0, *cuts], [*cuts, count], strict=True)):
            batch = invoices[start:stop]
            kind = "New Business" if number == 0 else rng.choice(
                ("Existing Business - Upgrade", "Renewal"))
            opportunity = self._opportunity(company, batch[0].issue - self.days(1, 21),
                                            "Closed Won", kind)
            opportunity.invoices = batch
            for invoice in batch:
                invoice.opportunity = opportunity

    def _plan_pipeline(self, company: _Company) -> None:
        """Deals that are not (yet) invoiced: unbilled wins, losses and open pipeline."""
        rng = self.rng
        if company.method != CRM_ONLY and rng.random() < 0.35:
            won = self._opportunity(company, self.as_of - self.days(1, 60), "Closed Won",
                                    "Existing Business - Upgrade")
            won.products = self._deal_products(company)
        if rng.random() < 0.2:
            lost = self._opportunity(company, self.as_of - self.days(20, 330), "Closed Lost",
                                     "New Business")
            lost.products = self._deal_products(company)
        if company.method == CRM_ONLY or rng.random() < 0.4:
            open_deal = self._opportunity(company, self.as_of + self.days(10, 120),
                                          rng.choice(OPEN_STAGES), "New Business")
            open_deal.products = self._deal_products(company)

    def _opportunity(self, company: _Company, close: dt.date, stage: str,
                     kind: str) -> _Opportunity:
        opportunity = _Opportunity(company, self.sf_id("006"), close, stage, kind)
        self.opportunities.append(opportunity)
        return opportunity

    def _deal_products(self, company: _Company) -> list[tuple[Product, Decimal]]:
        return [(line.product, line.quantity)
                for line in self._plan_lines(company, self.as_of, self.rng.randint(1, 3))]

    def _plan_invoice(self, company: _Company, issue: dt.date) -> _Invoice:
        rng = self.rng
        lines = self._plan_lines(company, issue, rng.randint(*self.lines_per_invoice))
        subtotal = sum((line.amount for line in lines), Decimal(0))
        discount, percent = Decimal(0), None
        if rng.random() < 0.18:
            if rng.random() < 0.75:
                percent = Decimal(rng.choice((5, 10, 15)))
                discount = _money(subtotal * percent / 100, company.currency)
            else:
                whole = (subtotal * Decimal("0.03")).quantize(Decimal(1)) or Decimal(1)
                discount = _money(whole, company.currency)
        term = company.term
        if rng.random() < 0.05:
            term = rng.choice(TERMS)
        return _Invoice(company, None, issue, term, lines, discount, percent,
                        subtotal_line=rng.random() < 0.15, tax_percent=company.tax_percent)

    def _plan_lines(self, company: _Company, issue: dt.date, count: int) -> list[_Line]:
        """1-5 distinct products; the first is the platform tier of the company's segment."""
        rng = self.rng
        tier = next(p for p in PRODUCTS if p.code == TIER_BY_SEGMENT[company.segment])
        extras = [p for p in PRODUCTS if p.code not in TIER_BY_SEGMENT.values()]
        products = [tier, *rng.sample(extras, count - 1)]
        months = 3 if company.segment != "smb" and rng.random() < 0.6 else 1
        seats = {"smb": (3, 25), "mid_market": (20, 150), "enterprise": (100, 900)}
        period = issue.strftime("%b %Y")
        lines = []
        for product in products:
            quantity = {
                "months": Decimal(months),
                "seats": Decimal(rng.randint(*seats[company.segment]) * months),
                "hours": Decimal(rng.choice(("4", "7.5", "12", "16.5", "24", "40"))),
                "units": Decimal(rng.randint(1, 3)),
                "usage": Decimal(rng.randint(1, 60)),
            }[product.quantity_kind]
            price = company.prices[product.code]
            lines.append(_Line(product, quantity, price,
                               _money(quantity * price, company.currency),
                               f"{product.name} ({period})"))
        return lines

    # ---- invoice states and cash -----------------------------------------------------------

    def settle(self) -> None:
        """Give every invoice its fate as of `as_of`, with the payments and credits it implies."""
        for invoice in self.invoices:
            if not invoice.bad_kind:
                self._settle_invoice(invoice)
        self._merge_payments()
        self._goodwill_credits()

    def _planned_payment(self, invoice: _Invoice) -> dt.date:
        payer, due = invoice.company.payer, invoice.due
        if payer == "punctual":
            day = due - self.days(0, min(10, invoice.term.due_days))
        elif payer == "late":
            day = due + self.days(3, 35)
        else:
            day = due + self.days(25, 90)
        return max(day, invoice.issue + dt.timedelta(days=1))

    def _settle_invoice(self, invoice: _Invoice) -> None:
        rng = self.rng
        age = (self.as_of - invoice.issue).days
        pay_day = self._planned_payment(invoice)
        roll = rng.random()
        has_account = invoice.company.method != ERP_ONLY
        if has_account and age >= 10 and roll < 0.05:
            invoice.state = DISPUTED
            self._dispute(invoice, is_open=True)
        elif age >= 15 and roll < 0.10:
            invoice.state = CREDITED
            self._credit(invoice)
        elif invoice.due < self.as_of - dt.timedelta(days=20) and roll < 0.16:
            invoice.state = OVERDUE  # forgotten: no payment at all, ages into the late buckets
        elif pay_day < self.as_of:
            partial = rng.random() < 0.08
            invoice.state = PARTIALLY_PAID if partial else PAID
            self._pay(invoice, pay_day, partial)
        elif age >= 3 and rng.random() < 0.10:
            invoice.state = PARTIALLY_PAID
            self._pay(invoice, invoice.issue + self.days(1, age - 1), partial=True)
        else:
            invoice.state = OVERDUE if invoice.due < self.as_of else CURRENT

    def _pay(self, invoice: _Invoice, day: dt.date, partial: bool) -> None:
        amount = invoice.total
        if partial:
            share = Decimal(self.rng.choice(("0.25", "0.4", "0.5", "0.6")))
            amount = _money(invoice.total * share, invoice.currency)
        invoice.paid += amount
        invoice.pay_date = day
        unapplied = Decimal(0)
        if not partial and self.rng.random() < 0.03:
            unapplied = {"JPY": Decimal(2500), "KWD": Decimal("5.000")}.get(
                invoice.currency, Decimal("25.00"))
        self.payments.append(_Payment(invoice.company, day, [(invoice, amount)], unapplied))

    def _credit(self, invoice: _Invoice) -> None:
        """A full credit note, applied to the invoice by a zero-total payment."""
        age = (self.as_of - invoice.issue).days
        day = invoice.issue + self.days(3, min(45, age - 1))
        memo = _CreditMemo(invoice.company, day, invoice, invoice.total, invoice.tax,
                           Decimal(0))
        self.credit_memos.append(memo)
        invoice.credited = invoice.total
        invoice.pay_date = day
        self.payments.append(_Payment(invoice.company, day,
                                      [(invoice, invoice.total), (None, invoice.total)],
                                      credit_memo=memo))
        if invoice.company.method != ERP_ONLY and self.rng.random() < 0.5:
            self._dispute(invoice, is_open=False, resolved_on=day)

    def _goodwill_credits(self) -> None:
        """A few credit notes not yet applied to anything: credit the customer still holds."""
        customers = [c for c in self.companies if c.method != CRM_ONLY]
        for company in self.rng.sample(customers, min(len(customers),
                                                      max(1, self.accounts // 100))):
            net = _money(company.prices[TIER_BY_SEGMENT[company.segment]] / 10,
                         company.currency)
            tax = _money(net * company.tax_percent / 100, company.currency)
            self.credit_memos.append(_CreditMemo(
                company, self.as_of - self.days(5, 60), None, net + tax, tax, net + tax))

    def _dispute(self, invoice: _Invoice, is_open: bool,
                 resolved_on: dt.date | None = None) -> None:
        age = (self.as_of - invoice.issue).days
        opened = invoice.issue + self.days(2, max(2, min(30, age - 1)))
        if resolved_on is not None:
            opened = min(opened, resolved_on)
        reason, subject = self.rng.choice(DISPUTE_REASONS)
        row = self._case_row("Billing Dispute", reason, subject, opened,
                             None if is_open else resolved_on)
        self.cases.append((invoice.company, invoice, row))

    def _merge_payments(self) -> None:
        """A few customers pay two invoices with one transfer (one payment, two lines)."""
        singles: dict[int, list[_Payment]] = {}
        for payment in self.payments:
            invoice = payment.lines[0][0]
            if (len(payment.lines) == 1 and invoice is not None and invoice.state == PAID
                    and not payment.unapplied):
                singles.setdefault(payment.company.index, []).append(payment)
        merged: set[int] = set()
        for index in sorted(singles):
            group = sorted(singles[index], key=lambda p: p.date)
            if len(group) < 2 or self.rng.random() >= 0.12:
                continue
            first, second = group[-2], group[-1]
            if (second.date - first.date).days > 45:
                continue
            second.lines = first.lines + second.lines
            first.lines[0][0].pay_date = second.date
            merged.add(id(first))
        self.payments = [p for p in self.payments if id(p) not in merged]

    # ---- deliberately bad rows -------------------------------------------------------------

    def plan_bad_invoices(self) -> None:
        """One extra invoice per bad invoice kind, each on a CRM-linked customer.

        They are planned like every other invoice and corrupted only when written, so the
        rest of the history (states, payments) stays exactly as it would be without them.
        """
        linked = [c for c in self.companies if c.method not in (CRM_ONLY, ERP_ONLY)]
        preferred = {
            INVALID_CURRENCY: [c for c in linked if c.currency == "USD"],
            TOTAL_MISMATCH: [c for c in linked if c.currency == "EUR"],
        }
        for kind in BAD_INVOICE_KINDS:
            company = self.rng.choice(preferred.get(kind) or linked)
            deal = max((o for o in self.opportunities
                        if o.company is company and o.invoices), key=lambda o: o.close_date)
            issue = self.before_as_of(max(deal.close_date + dt.timedelta(days=1),
                                          self.as_of - self.days(5, 40)))
            invoice = self._plan_invoice(company, issue)
            invoice.opportunity, invoice.bad_kind = deal, kind
            invoice.state = OVERDUE if invoice.due < self.as_of else CURRENT
            self.invoices.append(invoice)

    # ---- numbering -------------------------------------------------------------------------

    def number_documents(self) -> None:
        """ERP ids and document numbers in the order documents were created, as an ERP does."""
        self.invoices.sort(key=lambda inv: (inv.issue, inv.company.index))
        per_year: Counter[int] = Counter()
        for invoice in self.invoices:
            invoice.id = str(self.next_number("qb-txn", 1001))
            per_year[invoice.issue.year] += 1
            invoice.doc_number = f"INV-{invoice.issue.year}-{per_year[invoice.issue.year]:06d}"
            invoice.created = self.at(invoice.issue)
        # on one day, credit notes come before the payments that apply them
        events: list[tuple[dt.date, int, int, _CreditMemo | _Payment]] = [
            *((memo.date, 0, n, memo) for n, memo in enumerate(self.credit_memos)),
            *((payment.date, 1, n, payment) for n, payment in enumerate(self.payments)),
        ]
        memo_years: Counter[int] = Counter()
        for *_, event in sorted(events, key=lambda e: e[:3]):
            event.id = str(self.next_number("qb-txn", 1001))
            if isinstance(event, _CreditMemo):
                memo_years[event.date.year] += 1
                event.doc_number = f"CN-{event.date.year}-{memo_years[event.date.year]:06d}"
        for company in self.companies:
            if company.method != CRM_ONLY:
                company.customer_id = str(self.next_number("qb-customer", 101))
                company.address_id = str(self.next_number("qb-address", 2001))

    # ---- rows: Salesforce ------------------------------------------------------------------

    def add(self, table: str, row: dict[str, str]) -> dict[str, str]:
        row.setdefault("_fivetran_synced", self.synced())
        self.rows[table].append(row)
        return row

    def salesforce_rows(self) -> None:
        self._user_rows()
        for company in self.companies:
            if company.method != ERP_ONLY:
                company.account_id = self.sf_id("001")
        for company in self.companies:
            if company.method != ERP_ONLY:
                self._account_rows(company)
        for opportunity in self.opportunities:
            self._opportunity_rows(opportunity)
        self._case_rows()

    def _user_rows(self) -> None:
        count = min(len(SALES_REPS), 3 + self.accounts // 25)
        for number, name in enumerate(SALES_REPS[:count]):
            user_id = self.sf_id("005")
            active = number != count - 1 or count < 4  # one rep has left the company
            self.add("salesforce.user", {
                "id": user_id, "name": name,
                "email": f"{_slug(name).replace('-', '.')}@{SELLER_DOMAIN}",
                "is_active": _bool(active), "_fivetran_deleted": "false",
            })
            self.user_ids.append(user_id)

    def _account_rows(self, company: _Company) -> None:
        rng, country = self.rng, company.country
        company.owner_id = rng.choice(self.user_ids)
        created = self.at(company.since)
        website = rng.choice((f"https://www.{company.domain}", f"www.{company.domain}",
                              f"http://{company.domain}/", company.domain))
        has_number = company.method == EXTERNAL_ID
        has_vat = company.method in (EXTERNAL_ID, TAX_ID, CRM_ONLY)
        self.add("salesforce.account", {
            "id": company.account_id,
            "name": company.name,
            "account_number": company.customer_id if has_number else "",
            "parent_id": company.parent.account_id if company.parent else "",
            "type": "Prospect" if company.method == CRM_ONLY else "Customer",
            "industry": rng.choice(INDUSTRIES),
            "website": website,
            "phone": self._phone(country),
            "owner_id": company.owner_id,
            "billing_street": company.street,
            "billing_city": company.city.name,
            "billing_postal_code": company.city.postal_code,
            "billing_state": company.city.region,
            "billing_country": country.name,
            "billing_country_code": country.code,
            "currency_iso_code": company.currency,
            "vat_number_c": company.tax_id if has_vat else "",
            "preferred_language_c": company.language,
            "segment_c": company.segment,
            "invoice_delivery_channel_c": company.channel,
            "einvoice_format_c": company.einvoice_format,
            "peppol_participant_id_c": company.peppol_id,
            "x12_partner_c": company.x12_partner,
            "created_date": _ts(created),
            "last_modified_date": _ts(self.at(self.as_of - self.days(1, 200))),
            "is_deleted": "false",
        })
        self._contact_rows(company, created.date())

    def _phone(self, country: Country) -> str:
        return f"{country.phone_prefix} {self.rng.randint(10, 99)} " \
               f"{self.rng.randint(1000000, 9999999)}"

    def _contact_rows(self, company: _Company, since: dt.date) -> None:
        rng, country = self.rng, company.country
        company.billing_contact_id = self.sf_id("003")
        people = [(company.billing_contact_id, company.billing_first, company.billing_last,
                   company.billing_email, "Accounts Payable", True, False)]
        for _ in range(rng.randint(0, 2)):
            first, last = rng.choice(country.first_names), rng.choice(country.last_names)
            email = f"{_slug(first + '.' + last).replace('-', '.')}@{company.domain}"
            title = rng.choice(("Head of Data", "CFO", "IT Director", "Procurement Manager"))
            people.append((self.sf_id("003"), first, last, email, title, False, False))
        if rng.random() < 0.03:  # a former billing contact, deleted in the CRM
            first, last = rng.choice(country.first_names), rng.choice(country.last_names)
            email = f"{_slug(first + '.' + last).replace('-', '.')}@{company.domain}"
            contact_id = self.sf_id("003")
            people.append((contact_id, first, last, email, "Accounts Payable", True, True))
            self.soft_deleted.setdefault("salesforce.contact", []).append(contact_id)
        for contact_id, first, last, email, title, billing, deleted in people:
            self.add("salesforce.contact", {
                "id": contact_id, "account_id": company.account_id, "first_name": first,
                "last_name": last, "name": f"{first} {last}", "email": email, "title": title,
                "phone": self._phone(country), "mailing_country_code": country.code,
                "is_billing_contact_c": _bool(billing),
                "has_opted_out_of_email": _bool(billing and company.email_opt_out),
                "created_date": _ts(self.at(since + self.days(0, 60))),
                "last_modified_date": _ts(self.at(self.as_of - self.days(1, 300))),
                "is_deleted": _bool(deleted),
            })

    def _opportunity_rows(self, opportunity: _Opportunity) -> None:
        company = opportunity.company
        if opportunity.invoices:
            totals: dict[str, tuple[Product, Decimal]] = {}
            for invoice in opportunity.invoices:
                if invoice.bad_kind:
                    continue
                for line in invoice.lines:
                    _, quantity = totals.get(line.product.code, (line.product, Decimal(0)))
                    totals[line.product.code] = (line.product, quantity + line.quantity)
            opportunity.products = list(totals.values())
        created = min(opportunity.close_date - self.days(10, 90),
                      self.as_of - self.days(1, 30))
        closed = opportunity.stage.startswith("Closed")
        items = []
        for product, quantity in opportunity.products:
            price = company.prices[product.code]
            items.append((product, quantity, price, _money(quantity * price, company.currency)))
        amount = sum((total for *_, total in items), Decimal(0))
        self.add("salesforce.opportunity", {
            "id": opportunity.id, "account_id": company.account_id,
            "name": f"{company.name} - {opportunity.kind} {opportunity.close_date.year}",
            "amount": _text(_money(amount, company.currency)),
            "currency_iso_code": company.currency,
            "close_date": opportunity.close_date.isoformat(),
            "created_date": _ts(self.at(created)),
            "stage_name": opportunity.stage, "is_closed": _bool(closed),
            "is_won": _bool(opportunity.stage == "Closed Won"),
            "owner_id": company.owner_id, "type": opportunity.kind,
            "last_modified_date": _ts(self.at(self.before_as_of(
                min(opportunity.close_date, self.as_of) if closed else self.as_of))),
            "is_deleted": "false",
        })
        for product, quantity, price, total in items:
            self.add("salesforce.opportunity_line_item", {
                "id": self.sf_id("00k"), "opportunity_id": opportunity.id,
                "product_2_id": salesforce_id("01t", PRODUCTS.index(product) + 1),
                "product_code": product.code, "name": product.name,
                "description": product.name, "quantity": _text(quantity),
                "unit_price": _text(price), "list_price": _text(price),
                "total_price": _text(total), "discount": "",
                "created_date": _ts(self.at(created)), "is_deleted": "false",
            })

    def _case_row(self, kind: str, reason: str, subject: str, opened: dt.date,
                  closed: dt.date | None) -> dict[str, str]:
        """A case row; ids and invoice numbers are filled in by `_case_rows`."""
        opened_at = self.at(opened)
        closed_at = self.at(closed) if closed else None
        if closed_at is not None and closed_at <= opened_at:
            closed_at = opened_at + dt.timedelta(hours=2)
        return {
            "account_id": "", "contact_id": "", "subject": subject, "type": kind,
            "reason": reason,
            "status": "Closed" if closed else self.rng.choice(("New", "Working", "Escalated")),
            "priority": self.rng.choice(("Low", "Medium", "High")),
            "origin": self.rng.choice(("Email", "Web", "Phone")),
            "is_closed": _bool(closed is not None), "created_date": _ts(opened_at),
            "closed_date": _ts(closed_at) if closed_at else "",
            "invoice_number_c": "", "is_deleted": "false",
        }

    def _case_rows(self) -> None:
        """Disputes, plus questions about invoices answered on first contact, by open date."""
        for company in self.companies:
            if company.method == ERP_ONLY or self.rng.random() >= 0.08:
                continue
            opened = self.as_of - self.days(2, 300)
            row = self._case_row("Question", "Invoice copy", "Please resend our last invoice",
                                 opened, opened)
            self.cases.append((company, None, row))
        for company, invoice, case in sorted(self.cases, key=lambda c: c[2]["created_date"]):
            case["account_id"] = company.account_id
            case["contact_id"] = company.billing_contact_id
            if invoice is not None:
                case["invoice_number_c"] = invoice.doc_number
                case["subject"] = case["subject"].format(doc=invoice.doc_number)
            case["case_number"] = f"{self.next_number('case', 1001):08d}"
            case["id"] = self.sf_id("500")
            self.add("salesforce.case", case)

    # ---- rows: QuickBooks ------------------------------------------------------------------

    def quickbooks_rows(self) -> None:
        self._reference_rows()
        for invoice in self.invoices:  # the ERP's open balance counts every live invoice row
            if invoice.bad_kind not in (MISSING_KEY, SOFT_DELETED):
                index = invoice.company.index
                self.balances[index] = self.balances.get(index, Decimal(0)) + \
                    invoice.landed_balance
        for memo in self.credit_memos:  # and unapplied credit lowers it
            index = memo.company.index
            self.balances[index] = self.balances.get(index, Decimal(0)) - memo.remaining
        for company in self.companies:
            if company.method != CRM_ONLY:
                self._customer_rows(company)
        for invoice in self.invoices:
            self._invoice_rows(invoice)
        events = sorted([*self.credit_memos, *self.payments], key=lambda e: int(e.id))
        for event in events:
            if isinstance(event, _CreditMemo):
                self._credit_memo_row(event)
            else:
                self._payment_rows(event)
        self._orphan_payment()

    def _reference_rows(self) -> None:
        created = self.at(self.first_day - dt.timedelta(days=1500))
        for term in TERMS:
            self.add("quickbooks.term", {
                "id": term.id, "name": term.name, "type": "STANDARD",
                "due_days": str(term.due_days), "discount_days": "", "discount_percent": "",
                "active": "true", "created_at": _ts(created), "updated_at": _ts(created),
                "_fivetran_deleted": "false",
            })
        for number, product in enumerate((*PRODUCTS, RETIRED_PRODUCT), start=1):
            retired = product is RETIRED_PRODUCT
            self.add("quickbooks.item", {
                "id": str(number), "name": product.name,
                "fully_qualified_name": f"{product.category}:{product.name}",
                "description": f"{product.name} [{product.code}]", "type": "Service",
                "unit_price": _text(_money(product.price_home, HOME_CURRENCY)),
                "active": _bool(not retired), "created_at": _ts(created),
                "updated_at": _ts(self.at(self.first_day) if retired else created),
                "_fivetran_deleted": _bool(retired),
            })
            if retired:
                self.soft_deleted.setdefault("quickbooks.item", []).append(str(number))

    def _customer_rows(self, company: _Company) -> None:
        rng, country = self.rng, company.country
        display = company.name
        if company.method == NAME_DOMAIN:  # typed differently in the ERP; same domain
            base, form = company.base, company.name[len(company.base) + 1:]
            display = rng.choice((f"{base.upper()} {form}.", f"{base}, {form}",
                                  company.name.upper()))
            display = display.replace("..", ".")
        company.display_name = display
        parent = company.parent
        created = self.at(company.since + self.days(5, 25))
        balance = self.balances.get(company.index, Decimal(0))
        has_tax_id = company.method != NAME_DOMAIN or rng.random() < 0.5
        self.add("quickbooks.customer", {
            "id": company.customer_id, "display_name": display, "company_name": display,
            "fully_qualified_name": f"{parent.display_name}:{display}" if parent else display,
            "given_name": company.billing_first, "family_name": company.billing_last,
            "email": company.billing_email,
            "website": rng.choice((f"https://{company.domain}", f"www.{company.domain}")),
            "currency_id": company.currency, "active": "true",
            "balance": _text(_money(balance, company.currency)),
            "bill_address_id": company.address_id,
            "parent_customer_id": parent.customer_id if parent else "",
            "preferred_delivery_method": company.delivery, "sales_term_id": company.term.id,
            "taxable": _bool(company.tax_percent > 0),
            "primary_tax_identifier": company.tax_id if has_tax_id else "",
            "created_at": _ts(created),
            "updated_at": _ts(self.at(self.as_of - self.days(1, 30))),
            "_fivetran_deleted": "false",
        })
        self.add("quickbooks.address", {
            "id": company.address_id, "line_1": company.street, "line_2": company.street_2,
            "city": company.city.name, "country": country.name,
            "country_sub_division_code": company.city.region,
            "postal_code": company.city.postal_code,
        })

    def _invoice_rows(self, invoice: _Invoice) -> None:
        company, currency = invoice.company, invoice.currency
        rate = _month_rate(currency, invoice.issue)
        recent = (self.as_of - invoice.issue).days <= AWAITING_EMAIL_DAYS
        status = "NeedToSend" if recent else (
            "EmailSent" if company.delivery == "Email" else "NotSet")
        invoice.updated = invoice.created
        if invoice.pay_date is not None:
            invoice.updated = max(invoice.created, self.at(invoice.pay_date))
        row = self.add("quickbooks.invoice", {
            "id": invoice.id, "doc_number": invoice.doc_number,
            "customer_id": company.customer_id,
            "transaction_date": invoice.issue.isoformat(),
            "due_date": invoice.due.isoformat(), "currency_id": currency,
            "exchange_rate": _text(rate), "total_amount": _text(invoice.total),
            "total_tax": _text(invoice.tax), "balance": _text(invoice.balance),
            "home_balance": _text(_money(invoice.balance * rate, HOME_CURRENCY)),
            "home_total_amount": _text(_money(invoice.total * rate, HOME_CURRENCY)),
            "billing_email": company.billing_email,
            "billing_address_id": company.address_id, "sales_term_id": invoice.term.id,
            "customer_memo": company.country.customer_memo, "private_note": "",
            "email_status": status, "apply_tax_after_discount": "true",
            "custom_salesforce_opportunity_id":
                invoice.opportunity.id if invoice.opportunity else "",
            "created_at": _ts(invoice.created), "updated_at": _ts(invoice.updated),
            "_fivetran_deleted": "false",
        })
        if invoice.bad_kind != MISSING_KEY:
            self._invoice_line_rows(invoice)
        if invoice.bad_kind:
            self._corrupt_invoice(invoice, row)

    def _invoice_line_rows(self, invoice: _Invoice) -> None:
        currency = invoice.currency
        tax_code = "TAX" if invoice.tax_percent > 0 else "NON"
        index = 0
        for line in invoice.lines:
            self.add("quickbooks.invoice_line", {
                "invoice_id": invoice.id, "index": str(index),
                "amount": _text(line.amount), "description": line.description,
                "detail_type": "SalesItemLineDetail",
                "sales_item_item_id": str(PRODUCTS.index(line.product) + 1),
                "sales_item_quantity": _text(line.quantity),
                "sales_item_unit_price": _text(line.unit_price),
                "sales_item_tax_code_id": tax_code,
            })
            index += 1
        if invoice.subtotal_line:
            self.add("quickbooks.invoice_line", {
                "invoice_id": invoice.id, "index": str(index),
                "amount": _text(invoice.subtotal), "detail_type": "SubTotalLineDetail",
            })
            index += 1
        if invoice.discount:
            self.add("quickbooks.invoice_line", {
                "invoice_id": invoice.id, "index": str(index),
                "amount": _text(invoice.discount), "detail_type": "DiscountLineDetail",
                "discount_discount_percent":
                    _text(invoice.discount_percent) if invoice.discount_percent else "",
                "discount_percent_based": _bool(invoice.discount_percent is not None),
            })
        self.add("quickbooks.invoice_tax_line", {
            "invoice_id": invoice.id, "index": "0", "amount": _text(invoice.tax),
            "net_amount_taxable": _text(_money(invoice.taxable, currency)),
            "tax_percent": _text(invoice.tax_percent),
            "tax_rate_id": self._tax_rate_id(invoice), "percent_based": "true",
            "tax_inclusive_amount": "", "_fivetran_deleted": "false",
        })

    def _tax_rate_id(self, invoice: _Invoice) -> str:
        return TAX_RATE_IDS[(invoice.company.country.code, invoice.tax_percent)]

    def _corrupt_invoice(self, invoice: _Invoice, row: dict[str, str]) -> None:
        """Break one thing about a planned invoice and record it as a bad row."""
        kind, table = invoice.bad_kind, "quickbooks.invoice"
        if kind == INVALID_CURRENCY:
            row["currency_id"] = "US$"
            self._bad(kind, table, invoice, "currency_id", "US$",
                      "currency is not an ISO 4217 code")
        elif kind == DUE_BEFORE_ISSUE:
            row["due_date"] = (invoice.issue - dt.timedelta(days=5)).isoformat()
            self._bad(kind, table, invoice, "due_date", row["due_date"],
                      "due date is five days before the transaction date")
        elif kind == TOTAL_MISMATCH:
            wrong = invoice.total + 1
            row["total_amount"] = row["balance"] = _text(wrong)
            self._bad(kind, table, invoice, "total_amount", row["total_amount"],
                      f"lines - discount + tax = {_text(invoice.total)}; header is 1 more")
        elif kind == UNPARSEABLE_LINE_AMOUNT:
            line = next(r for r in self.rows["quickbooks.invoice_line"]
                        if r["invoice_id"] == invoice.id)
            line["amount"] = "n/a"
            self._bad(kind, "quickbooks.invoice_line", invoice, "amount", "n/a",
                      f"sales line index {line['index']} has no numeric amount",
                      key=(invoice.id, line["index"]))
        elif kind == MISSING_KEY:
            row["id"] = ""
            self._bad(kind, table, invoice, "id", "", "invoice row without its id "
                      "(and without lines)", key=("",), invoice_id="")
        elif kind == DUPLICATE_KEY:
            newer = dict(row)
            row["email_status"] = "NeedToSend"
            newer["email_status"] = "EmailSent"
            newer["updated_at"] = _ts(invoice.updated + dt.timedelta(days=1, minutes=7))
            newer["_fivetran_synced"] = _ts(dt.datetime.strptime(
                row["_fivetran_synced"], "%Y-%m-%d %H:%M:%S") + dt.timedelta(hours=1))
            self.add(table, newer)
            self._bad(kind, table, invoice, "id", invoice.id,
                      "same id twice; the later updated_at/_fivetran_synced is the current one")
        elif kind == SOFT_DELETED:
            row["_fivetran_deleted"] = "true"
            self._bad(kind, table, invoice, "_fivetran_deleted", "true",
                      "voided invoice, deleted in the ERP")

    def _bad(self, kind: str, table: str, invoice: _Invoice | None, field_name: str,
             value: str, note: str, key: tuple[str, ...] | None = None,
             invoice_id: str | None = None) -> None:
        inv_id = invoice.id if invoice is not None else ""
        if invoice_id is not None:
            inv_id = invoice_id
        self.bad_rows.setdefault(kind, []).append(BadRow(
            kind, table, key if key is not None else (inv_id,), field_name, value, note,
            inv_id, invoice.doc_number if invoice is not None else ""))

    def _credit_memo_row(self, memo: _CreditMemo) -> None:
        currency = memo.company.currency
        reference = memo.invoice.doc_number if memo.invoice else ""
        created = self.at(memo.date)
        self.add("quickbooks.credit_memo", {
            "id": memo.id, "doc_number": memo.doc_number,
            "customer_id": memo.company.customer_id,
            "transaction_date": memo.date.isoformat(), "currency_id": currency,
            "exchange_rate": _text(_month_rate(currency, memo.date)),
            "total_amount": _text(memo.total), "total_tax": _text(memo.tax),
            "balance": _text(_money(memo.remaining, currency)),
            "remaining_credit": _text(_money(memo.remaining, currency)),
            "customer_memo": f"Credit note for invoice {reference}" if reference else
            "Goodwill credit",
            "private_note": f"Reverses {reference}" if reference else "",
            "created_at": _ts(created), "updated_at": _ts(created + dt.timedelta(minutes=3)),
            "_fivetran_deleted": "false",
        })

    def _payment_rows(self, payment: _Payment) -> None:
        currency = payment.company.currency
        is_credit = payment.credit_memo is not None
        applied = sum((amount for _, amount in payment.lines), Decimal(0))
        total = Decimal(0) if is_credit else applied + payment.unapplied
        moment = self.at(payment.date)
        self.add("quickbooks.payment", {
            "id": payment.id, "customer_id": payment.company.customer_id,
            "transaction_date": payment.date.isoformat(), "currency_id": currency,
            "exchange_rate": _text(_month_rate(currency, payment.date)),
            "total_amount": _text(_money(total, currency)),
            "unapplied_amount": _text(_money(payment.unapplied, currency)),
            "reference_number": "" if is_credit else str(self.rng.randint(100000, 999999)),
            "payment_method_id": "" if is_credit else self.rng.choice(("1", "1", "1", "2", "3")),
            "private_note": "", "created_at": _ts(moment), "updated_at": _ts(moment),
            "_fivetran_deleted": "false",
        })
        for index, (invoice, amount) in enumerate(payment.lines):
            self.add("quickbooks.payment_line", {
                "payment_id": payment.id, "index": str(index), "amount": _text(amount),
                "invoice_id": invoice.id if invoice is not None else payment.orphan_invoice_id,
                "credit_memo_id": payment.credit_memo.id
                if invoice is None and payment.credit_memo else "",
            })

    def _orphan_payment(self) -> None:
        """A payment line that names an invoice id the ERP export does not contain."""
        company = next(c for c in self.companies if c.method == EXTERNAL_ID)
        missing_id = str(self.next_number("qb-txn", 1001) + 500)
        amount = _money(company.prices[TIER_BY_SEGMENT[company.segment]], company.currency)
        payment = _Payment(company, self.as_of - dt.timedelta(days=3), [(None, amount)],
                           orphan_invoice_id=missing_id,
                           id=str(self.next_number("qb-txn", 1001)))
        self._payment_rows(payment)
        self.bad_rows.setdefault(ORPHAN_PAYMENT_LINE, []).append(BadRow(
            ORPHAN_PAYMENT_LINE, "quickbooks.payment_line", (payment.id, "0"), "invoice_id",
            missing_id, f"payment {payment.id} applies {_text(amount)} {company.currency} "
            "to an invoice that does not exist", missing_id, ""))

    def corrupt_other_rows(self) -> None:
        """The bad rows that are not invoices: an odd timestamp and a blank deal amount."""
        customers = self.rows["quickbooks.customer"]
        row = customers[self.rng.randrange(len(customers))]
        moment = dt.datetime.strptime(row["updated_at"], "%Y-%m-%d %H:%M:%S")
        odd = f"{moment:%Y-%m-%d} {self.rng.randint(1, 9)}:{moment:%M:%S}"
        row["updated_at"] = odd
        self.bad_rows.setdefault(ODD_TIMESTAMP, []).append(BadRow(
            ODD_TIMESTAMP, "quickbooks.customer", (row["id"],), "updated_at", odd,
            "hour without its leading zero, as some syncs write it"))
        opportunities = self.rows["salesforce.opportunity"]
        target = next((o for o in opportunities if o["is_closed"] == "false"), opportunities[0])
        target["amount"] = ""
        self.bad_rows.setdefault(MISSING_AMOUNT, []).append(BadRow(
            MISSING_AMOUNT, "salesforce.opportunity", (target["id"],), "amount", "",
            f"{target['stage_name']} opportunity without an amount"))

    # ---- summary ---------------------------------------------------------------------------

    def summary(self, out_dir: Path, files: list[Path]) -> GenerationSummary:
        good = [inv for inv in self.invoices if not inv.bad_kind]
        states = Counter(inv.state for inv in good)
        links = [AccountLink(c.account_id, c.customer_id, c.method) for c in self.companies]
        unbilled = sorted(o.id for o in self.opportunities
                          if o.stage == "Closed Won" and not o.invoices)
        return GenerationSummary(
            out_dir=out_dir, seed=self.seed, accounts=self.accounts, as_of=self.as_of,
            files=files,
            row_counts={name: len(rows) for name, rows in self.rows.items()},
            invoices_by_state={state: states[state] for state in STATES},
            invoice_states={inv.id: inv.state for inv in good},
            bad_rows={kind: self.bad_rows.get(kind, []) for kind in BAD_ROW_KINDS},
            links=links, soft_deleted=dict(self.soft_deleted),
            unbilled_opportunity_ids=unbilled,
        )


def _write_table(path: Path, table: RawTable, rows: list[dict[str, str]]) -> None:
    """Write one table with exactly the contract columns, in contract order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table.columns), restval="",
                                extrasaction="raise", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def generate(out_dir: Path, seed: int, accounts: int, as_of: dt.date,
             attachments_dir: Path | None = None,
             seller_name: str | None = None,
             lines_per_invoice: tuple[int, int] = DEFAULT_LINES_PER_INVOICE,
             ) -> GenerationSummary:
    """Write a deterministic Salesforce + QuickBooks landing folder under `out_dir`.

    Args:
        out_dir: folder that receives `salesforce/<table>.csv` and `quickbooks/<table>.csv`
            (created if missing; existing files of the same names are overwritten).
        seed: seed of the one `random.Random` every value is drawn from.
        accounts: number of Salesforce accounts (about five invoices each).
        as_of: the business date the data describes; every transaction is dated before it.
        attachments_dir: when given, the attachment repository folder that also receives
            the customers' contracts, statements of work and proofs of delivery as PDFs
            (`q2c.demo_documents`); the CSVs are the same with or without it.
        seller_name: the seller those documents name (default: the demo seller).
        lines_per_invoice: the fewest and most product lines of an invoice, drawn evenly
            (default 1 to 5; a subtotal or discount line may come on top). Benchmarks raise
            it to land more lines per invoice; the default keeps seeded demos as they were.

    Returns:
        What was written, with row counts, invoice states and every deliberately bad row.
    """
    if accounts < 1:
        raise ValueError(f"accounts must be at least 1, got {accounts}")
    low, high = lines_per_invoice
    if not 1 <= low <= high <= MAX_LINES_PER_INVOICE:
        raise ValueError(
            f"lines_per_invoice must be (low, high) with 1 <= low <= high <= "
            f"{MAX_LINES_PER_INVOICE} (one line per distinct product), got {lines_per_invoice}"
        )
    generator = _Generator(seed, accounts, as_of, lines_per_invoice)
    generator.plan_companies()
    generator.plan_deals()
    generator.plan_bad_invoices()
    generator.settle()
    generator.number_documents()
    generator.salesforce_rows()
    generator.quickbooks_rows()
    generator.corrupt_other_rows()

    out_dir = Path(out_dir)
    files = []
    for table in RAW_TABLES:
        path = out_dir / table.source / f"{table.name}.csv"
        rows = generator.rows[f"{table.source}.{table.name}"]
        _write_table(path, table, rows)
        files.append(path)
        log.info("wrote %d rows of %s.%s to %s", len(rows), table.source, table.name, path)
    summary = generator.summary(out_dir, files)
    if attachments_dir is not None:
        from q2c.demo_documents import write_demo_documents  # WeasyPrint only when asked

        summary.documents = write_demo_documents(
            Path(attachments_dir), seed, generator.companies, generator.opportunities,
            seller_name)
    log.info("demo data for %d accounts as of %s: %d invoices, %d bad rows", accounts, as_of,
             summary.row_counts["quickbooks.invoice"],
             sum(len(rows) for rows in summary.bad_rows.values()))
    return summary
