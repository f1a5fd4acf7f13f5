"""Supporting documents for the demo: contracts, statements of work and proofs of delivery.

The attachment rules (`q2c/attachments/default_rules.yaml`) look for these files in the
repository folder; without them the demo would only ever show "not there". So the demo
files a few, laid out the way the rules look for them and keyed on the ids the invoices
carry (the CRM account id, and the CRM opportunity id as quote and order id):

- `accounts/<account id>/contracts/master-services-agreement.pdf`: the master services
  agreement of every enterprise customer (an account that buys, not a prospect);
- `quotes/<opportunity id>/sow.pdf`: the statement of work of each invoiced
  New Business deal of an enterprise or mid-market customer (upgrades and renewals go
  without one, so the demo shows an optional document that is missing, too);
- `orders/<opportunity id>/proof-of-delivery.pdf`: the signed delivery note of each
  invoiced New Business order that bills on-site services, both the onboarding package
  and training days.

Each is a short, real PDF rendered by WeasyPrint that names the customer and the seller.
Reference numbers, signatories and dates come from a `random.Random` of their own, so the
rest of a seeded demo stays exactly as it was, and the same seed gives the same bytes.
The folder keeps a list of what the demo wrote (`MANIFEST`); the next run removes those
files first, so a smaller or reseeded demo never leaves another customer's contract
under an id that now names someone else. Files the demo did not write are left alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from weasyprint import HTML
from weasyprint.urls import URLFetcher

from q2c.demo import CRM_ONLY
from q2c.settings import Seller

if TYPE_CHECKING:
    from q2c.demo import _Company, _Opportunity

log = logging.getLogger(__name__)

CONTRACT = "contract"
STATEMENT_OF_WORK = "statement_of_work"
PROOF_OF_DELIVERY = "proof_of_delivery"
KINDS = (CONTRACT, STATEMENT_OF_WORK, PROOF_OF_DELIVERY)

CONTRACT_NAME = "master-services-agreement.pdf"
SOW_SEGMENTS = ("enterprise", "mid_market")
SOW_DEAL_KIND = "New Business"
ON_SITE_PRODUCTS = frozenset({"ONB", "TRN-DAY"})  # onboarding package, training day
MANIFEST = ".q2c-demo-documents"

_SELLER_SIGNATORIES = ("Katrin Vogel", "Stefan Albrecht", "Miriam Sander")
_CUSTOMER_TITLES = ("Chief Financial Officer", "Head of Procurement", "Managing Director")
_STYLE = """
@page { size: A4; margin: 22mm 20mm; }
body { font-family: sans-serif; font-size: 10.5pt; line-height: 1.45; }
h1 { font-size: 17pt; margin: 0 0 4mm; }
.ref { color: #555; margin-bottom: 8mm; }
.party { margin: 0 0 4mm; }
table { border-collapse: collapse; margin: 4mm 0; }
td, th { border-bottom: 0.5pt solid #999; padding: 1.5mm 4mm 1.5mm 0; text-align: left; }
.signatures td { border: none; padding-top: 12mm; width: 80mm; vertical-align: top; }
"""
# Nothing is fetched: the documents are self-contained HTML.
_NO_FETCHING = URLFetcher(allowed_protocols=frozenset())


def write_demo_documents(
    folder: Path,
    seed: int,
    companies: Sequence[_Company],
    opportunities: Sequence[_Opportunity],
    seller_name: str | None = None,
) -> dict[str, list[Path]]:
    """Render the demo's supporting documents into the attachment repository `folder`.

    Args:
        folder: the repository folder (`Q2C_ATTACHMENTS`, `<Q2C_HOME>/attachments`).
        seed: the demo seed; the documents draw from `random.Random(f"{seed}-attachments")`.
        companies: the generator's companies, with their CRM ids and names filled in.
        opportunities: the generator's deals, with their invoices and products.
        seller_name: the seller named in every document (default: the demo seller).

    Returns:
        The files written by kind (`contract`, `statement_of_work`, `proof_of_delivery`).
    """
    folder = Path(folder)
    seller = seller_name or Seller().name
    rng = random.Random(f"{seed}-attachments")
    _remove_previous(folder)
    written: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    for company in companies:
        if company.segment == "enterprise" and company.method != CRM_ONLY:
            account = company.account_id or company.customer_id
            path = folder / "accounts" / account / "contracts" / CONTRACT_NAME
            written[CONTRACT].append(_write(path, _contract(company, seller, rng)))
    for deal in opportunities:
        if not deal.invoices or deal.kind != SOW_DEAL_KIND:
            continue
        if deal.company.segment in SOW_SEGMENTS:
            path = folder / "quotes" / deal.id / "sow.pdf"
            written[STATEMENT_OF_WORK].append(_write(path, _statement_of_work(deal, seller,
                                                                                rng)))
        if ON_SITE_PRODUCTS <= {product.code for product, _ in deal.products}:
            path = folder / "orders" / deal.id / "proof-of-delivery.pdf"
            written[PROOF_OF_DELIVERY].append(_write(path, _proof_of_delivery(deal, seller,
                                                                               rng)))
    files = [path for kind in KINDS for path in written[kind]]
    (folder / MANIFEST).write_text(
        "".join(f"{path.relative_to(folder).as_posix()}\n" for path in files), encoding="utf-8")
    log.info("wrote %d contracts, %d statements of work and %d proofs of delivery to %s",
             *(len(written[kind]) for kind in KINDS), folder)
    return written


def _remove_previous(folder: Path) -> None:
    """Delete the files the last demo run listed in the manifest, and their empty folders."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return
    for line in manifest.read_text(encoding="utf-8").splitlines():
        relative = PurePosixPath(line.strip())
        if not line.strip() or relative.is_absolute() or ".." in relative.parts:
            continue
        path = folder.joinpath(*relative.parts)
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != folder and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    manifest.unlink()


def _write(path: Path, html: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    identifier = hashlib.md5(html.encode("utf-8"), usedforsecurity=False).hexdigest()
    pdf = HTML(string=html, url_fetcher=_NO_FETCHING).write_pdf(
        pdf_identifier=identifier.encode("ascii"))
    path.write_bytes(pdf)
    return path


def _page(title: str, body: Iterable[str]) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
            + "".join(body) + "</body></html>")


def _address(company: _Company) -> str:
    city = f"{company.city.postal_code} {company.city.name}".strip()
    parts = [company.street, company.street_2, city, company.country.name]
    return ", ".join(escape(part) for part in parts if part)


def _customer_signatory(company: _Company, rng: random.Random) -> str:
    country = company.country
    return f"{rng.choice(country.first_names)} {rng.choice(country.last_names)}"


def _signatures(seller: str, seller_person: str, company: _Company, person: str,
                title: str) -> str:
    return ("<table class='signatures'><tr>"
            f"<td>For {escape(seller)}<br>{escape(seller_person)}, Managing Director</td>"
            f"<td>For {escape(company.name)}<br>{escape(person)}, {escape(title)}</td>"
            "</tr></table>")


def _contract(company: _Company, seller: str, rng: random.Random) -> str:
    signed = company.since
    reference = f"MSA-{signed.year}-{rng.randint(100, 999)}"
    person, title = _customer_signatory(company, rng), rng.choice(_CUSTOMER_TITLES)
    return _page(f"Master services agreement {reference}", [
        "<h1>Master Services Agreement</h1>",
        f"<p class='ref'>Agreement {reference}, effective {signed.isoformat()}</p>",
        f"<p class='party'>between <b>{escape(seller)}</b> (the provider)</p>",
        f"<p class='party'>and <b>{escape(company.name)}</b></p>",
        f"<p class='party'>{_address(company)} (the customer)</p>",
        "<p>The provider delivers its platform subscriptions and professional services to "
        "the customer under this agreement and the order forms and statements of work that "
        "refer to it. Invoices are payable in "
        f"{escape(company.currency)}, {escape(company.term.name.lower())}.</p>",
        _signatures(seller, rng.choice(_SELLER_SIGNATORIES), company, person, title),
    ])


def _statement_of_work(deal: _Opportunity, seller: str, rng: random.Random) -> str:
    company = deal.company
    start = deal.close_date + dt.timedelta(days=rng.randint(1, 14))
    reference = f"SOW-{deal.close_date.year}-{rng.randint(1000, 9999)}"
    rows = "".join(f"<tr><td>{escape(product.name)}</td><td>{quantity:f}</td></tr>"
                   for product, quantity in deal.products)
    person = _customer_signatory(company, rng)
    return _page(f"Statement of work {reference}", [
        "<h1>Statement of Work</h1>",
        f"<p class='ref'>{reference} for opportunity {escape(deal.id)}, "
        f"starting {start.isoformat()}</p>",
        f"<p class='party'>Customer: <b>{escape(company.name)}</b></p>",
        f"<p class='party'>Provider: <b>{escape(seller)}</b></p>",
        "<p>Scope: the provider sets up and delivers the following, billed as the order "
        "says:</p>",
        f"<table><tr><th>Item</th><th>Quantity</th></tr>{rows}</table>",
        _signatures(seller, rng.choice(_SELLER_SIGNATORIES), company, person,
                    "Project Sponsor"),
    ])


def _proof_of_delivery(deal: _Opportunity, seller: str, rng: random.Random) -> str:
    company = deal.company
    first_invoice = min(invoice.issue for invoice in deal.invoices)
    window = max(1, (first_invoice - deal.close_date).days)
    delivered = deal.close_date + dt.timedelta(days=rng.randint(1, window))
    rows = "".join(f"<tr><td>{escape(product.name)}</td><td>{quantity:f}</td></tr>"
                   for product, quantity in deal.products if product.code in ON_SITE_PRODUCTS)
    person = _customer_signatory(company, rng)
    return _page(f"Proof of delivery {deal.id}", [
        "<h1>Proof of Delivery</h1>",
        f"<p class='ref'>Order {escape(deal.id)}, delivered {delivered.isoformat()}</p>",
        f"<p class='party'>Delivered by <b>{escape(seller)}</b></p>",
        f"<p class='party'>to <b>{escape(company.name)}</b></p>",
        f"<p class='party'>{_address(company)}</p>",
        f"<table><tr><th>Service delivered on site</th><th>Quantity</th></tr>{rows}</table>",
        f"<p>Received complete and in good order: {escape(person)}, "
        f"{escape(company.city.name)}, {delivered.isoformat()}</p>",
    ])
