"""Hand-made QuickBooks and Stripe exports for q2c's cash allocation.

tests/test_cash_allocation.py builds them; the expected values are worked out there.

Rows are written the way Fivetran lands them (QuickBooks amounts in units, Stripe amounts in
cents with lower-case currencies). Only the columns that matter are given; `write_landing`
writes every raw table of both sources, with each table's full header.

QuickBooks, EUR unless said otherwise (invoice id, number, customer, total, issue -> due):

    9101 A-101 qc1 100.00 01-01 -> 01-31     9201 B-201 qc2 150.00 01-16 -> 02-15
    9102 A-102 qc1 200.00 01-30 -> 02-29     9202 B-202 qc2 150.00 01-16 -> 02-15
    9103 A-103 qc1 300.00 03-01 -> 03-31     9203 B-203 qc2  80.00 02-09 -> 03-10
    9301 G-301 qc3 500.00 2023-12-21 -> 01-20; 9401 U-401 qc4 75.00 USD 02-01 -> 03-02
    9402 U-402 qc4 40.00 USD, 9403 U-403 qc4 30.00 USD, both 02-01 -> 03-02

Payments, none applied by QuickBooks except 8006 (200.00 to G-301), 8007 (50.00 to
invoice 9999, which the export does not hold) and 8010 (30.00 to U-403):

    8001 qc1 02-05 250.00 ref "Invoice a-103, thanks"   8004 qc2 02-20 150.00
    8002 qc1 02-06 200.00 ref "CHK 5512"                8005 qc2 02-20 100.00
    8003 qc1 02-10 180.00                               8006 qc3 01-25 200.00
    8008 qc1 02-12  80.00 ref "INV B-203"               8007 qc3 01-26  50.00
    8009 qc4 02-27  40.00 USD ref "ch_6"                8010 qc4 02-28  30.00 USD ref "pi_7"

Credit memo 7001 (qc3, 40.00, 2024-02-01) is applied to nothing.

Stripe, USD, customer cus_s1: invoices in_1 ST-0001 100.00 (paid by ch_1, 3.20 fee,
30.00 refunded by re_1 and credited by cn_1), in_2 ST-0002 50.00 (credit note cn_2 of
80.00 names it), in_3 ST-0003 60.00 (paid by ch_3, whose dispute was lost). ch_4 (75.00,
2.50 fee) names QuickBooks invoice U-401 in its metadata and is refunded 25.00 by re_4;
ch_5 (20.00) names nothing. ch_6 (40.00) names U-402 and ch_7 (30.00, payment intent pi_7)
names U-403: QuickBooks payments 8009 and 8010 record them (their references).
"""

from __future__ import annotations

import csv
from pathlib import Path

from q2c.sources.schema import tables_of

Rows = dict[str, list[dict[str, str]]]

_QB = {"_fivetran_deleted": "false", "_fivetran_synced": "2024-04-01 02:00:00"}


def _qb_customer(customer_id: str, name: str, currency: str) -> dict[str, str]:
    return {"id": customer_id, "display_name": name, "company_name": name,
            "currency_id": currency, "active": "true", **_QB}


def _qb_invoice(invoice_id: str, number: str, customer: str, total: str, balance: str,
                issued: str, due: str, currency: str = "EUR") -> dict[str, str]:
    return {"id": invoice_id, "doc_number": number, "customer_id": customer,
            "currency_id": currency, "total_amount": total, "total_tax": "0",
            "balance": balance, "transaction_date": issued, "due_date": due, **_QB}


def _qb_payment(payment_id: str, customer: str, day: str, total: str, unapplied: str,
                reference: str = "", currency: str = "EUR") -> dict[str, str]:
    return {"id": payment_id, "customer_id": customer, "transaction_date": day,
            "currency_id": currency, "total_amount": total, "unapplied_amount": unapplied,
            "reference_number": reference, **_QB}


QUICKBOOKS: Rows = {
    "customer": [
        _qb_customer("qc1", "Alpha Tools", "EUR"),
        _qb_customer("qc2", "Beta Foods", "EUR"),
        _qb_customer("qc3", "Gamma Werke", "EUR"),
        _qb_customer("qc4", "Delta Inc", "USD"),
    ],
    "invoice": [
        _qb_invoice("9101", "A-101", "qc1", "100.00", "100.00", "2024-01-01", "2024-01-31"),
        _qb_invoice("9102", "A-102", "qc1", "200.00", "200.00", "2024-01-30", "2024-02-29"),
        _qb_invoice("9103", "A-103", "qc1", "300.00", "300.00", "2024-03-01", "2024-03-31"),
        _qb_invoice("9201", "B-201", "qc2", "150.00", "150.00", "2024-01-16", "2024-02-15"),
        _qb_invoice("9202", "B-202", "qc2", "150.00", "150.00", "2024-01-16", "2024-02-15"),
        _qb_invoice("9203", "B-203", "qc2", "80.00", "80.00", "2024-02-09", "2024-03-10"),
        _qb_invoice("9301", "G-301", "qc3", "500.00", "300.00", "2023-12-21", "2024-01-20"),
        _qb_invoice("9401", "U-401", "qc4", "75.00", "75.00", "2024-02-01", "2024-03-02",
                    currency="USD"),
        _qb_invoice("9402", "U-402", "qc4", "40.00", "40.00", "2024-02-01", "2024-03-02",
                    currency="USD"),
        _qb_invoice("9403", "U-403", "qc4", "30.00", "0.00", "2024-02-01", "2024-03-02",
                    currency="USD"),
    ],
    "payment": [
        _qb_payment("8001", "qc1", "2024-02-05", "250.00", "250.00", "Invoice a-103, thanks"),
        _qb_payment("8002", "qc1", "2024-02-06", "200.00", "200.00", "CHK 5512"),
        _qb_payment("8003", "qc1", "2024-02-10", "180.00", "180.00"),
        _qb_payment("8008", "qc1", "2024-02-12", "80.00", "80.00", "INV B-203"),
        _qb_payment("8004", "qc2", "2024-02-20", "150.00", "150.00"),
        _qb_payment("8005", "qc2", "2024-02-20", "100.00", "100.00"),
        _qb_payment("8006", "qc3", "2024-01-25", "200.00", "0.00"),
        _qb_payment("8007", "qc3", "2024-01-26", "50.00", "0.00"),
        _qb_payment("8009", "qc4", "2024-02-27", "40.00", "40.00", "ch_6", currency="USD"),
        _qb_payment("8010", "qc4", "2024-02-28", "30.00", "0.00", "pi_7", currency="USD"),
    ],
    "payment_line": [
        {"payment_id": "8006", "index": "0", "amount": "200.00", "invoice_id": "9301"},
        {"payment_id": "8007", "index": "0", "amount": "50.00", "invoice_id": "9999"},
        {"payment_id": "8010", "index": "0", "amount": "30.00", "invoice_id": "9403"},
    ],
    "credit_memo": [
        {"id": "7001", "doc_number": "CM-1", "customer_id": "qc3", "currency_id": "EUR",
         "transaction_date": "2024-02-01", "total_amount": "40.00", "total_tax": "0",
         "balance": "40.00", "remaining_credit": "40.00", **_QB},
    ],
}

_LIVE = {"livemode": "true"}


def _st_invoice(invoice_id: str, number: str, status: str, total: str, created: str,
                due: str) -> dict[str, str]:
    return {"id": invoice_id, "number": number, "customer_id": "cus_s1", "currency": "usd",
            "status": status, "subtotal": total, "tax": "0", "total": total,
            "amount_due": total, "amount_remaining": "0", "created": created,
            "status_transitions_finalized_at": created, "due_date": due,
            "is_deleted": "false", **_LIVE}


def _st_charge(charge_id: str, amount: str, created: str, **extra: str) -> dict[str, str]:
    return {"id": charge_id, "customer_id": "cus_s1", "currency": "usd", "amount": amount,
            "status": "succeeded", "paid": "true", "captured": "true", "created": created,
            **_LIVE, **extra}


def _st_txn(txn_id: str, source: str, kind: str, amount: str, fee: str) -> dict[str, str]:
    return {"id": txn_id, "source": source, "type": kind, "currency": "usd",
            "amount": amount, "fee": fee, "net": str(int(amount) - int(fee)),
            "status": "available", "created": "2024-02-10 00:00:00"}


STRIPE: Rows = {
    "customer": [{"id": "cus_s1", "name": "Sierra Shop", "currency": "usd",
                  "is_deleted": "false", **_LIVE}],
    "invoice": [
        _st_invoice("in_1", "ST-0001", "paid", "10000", "2024-02-01 09:00:00",
                    "2024-03-02 09:00:00"),
        _st_invoice("in_2", "ST-0002", "open", "5000", "2024-02-02 09:00:00",
                    "2024-03-03 09:00:00"),
        _st_invoice("in_3", "ST-0003", "paid", "6000", "2024-02-03 09:00:00",
                    "2024-03-04 09:00:00"),
    ],
    "charge": [
        _st_charge("ch_1", "10000", "2024-02-05 10:00:00", invoice_id="in_1",
                   balance_transaction_id="txn_1", amount_refunded="3000"),
        _st_charge("ch_3", "6000", "2024-02-06 10:00:00", invoice_id="in_3"),
        _st_charge("ch_4", "7500", "2024-02-07 10:00:00", balance_transaction_id="txn_4",
                   amount_refunded="2500",
                   metadata='{"q2c_channel":"portal","q2c_invoice_number":"U-401"}'),
        _st_charge("ch_5", "2000", "2024-02-25 10:00:00"),
        _st_charge("ch_6", "4000", "2024-02-26 10:00:00",
                   metadata='{"q2c_invoice_number":"U-402"}'),
        _st_charge("ch_7", "3000", "2024-02-27 10:00:00", payment_intent_id="pi_7",
                   metadata='{"q2c_invoice_number":"U-403"}'),
    ],
    "refund": [
        {"id": "re_1", "charge_id": "ch_1", "currency": "usd", "amount": "3000",
         "status": "succeeded", "created": "2024-02-10 08:00:00"},
        {"id": "re_4", "charge_id": "ch_4", "currency": "usd", "amount": "2500",
         "status": "succeeded", "created": "2024-02-15 08:00:00"},
    ],
    "dispute": [
        {"id": "du_3", "charge_id": "ch_3", "currency": "usd", "amount": "6000",
         "status": "lost", "created": "2024-02-20 00:00:00", **_LIVE},
    ],
    "credit_note": [
        {"id": "cn_1", "number": "ST-0001-CN-01", "invoice_id": "in_1", "refund_id": "re_1",
         "currency": "usd", "amount": "3000", "subtotal": "3000", "discount_amount": "0",
         "total": "3000", "status": "issued", "type": "post_payment",
         "created": "2024-02-10 08:00:00", **_LIVE},
        {"id": "cn_2", "number": "ST-0002-CN-01", "invoice_id": "in_2", "currency": "usd",
         "amount": "8000", "subtotal": "8000", "discount_amount": "0", "total": "8000",
         "status": "issued", "type": "pre_payment", "created": "2024-02-12 08:00:00",
         **_LIVE},
    ],
    "balance_transaction": [
        _st_txn("txn_1", "ch_1", "charge", "10000", "320"),
        _st_txn("txn_4", "ch_4", "charge", "7500", "250"),
    ],
}

FIXTURES: dict[str, Rows] = {"quickbooks": QUICKBOOKS, "stripe": STRIPE}


def write_landing(landing: Path, source: str) -> None:
    """Write every raw table of `source` as `<landing>/<source>/<table>.csv`."""
    folder = landing / source
    folder.mkdir(parents=True, exist_ok=True)
    for table in tables_of(source):
        with (folder / f"{table.name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table.columns), restval="")
            writer.writeheader()
            writer.writerows(FIXTURES[source].get(table.name, []))
