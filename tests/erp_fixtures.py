"""Hand-made landed exports of NetSuite, Dynamics 365 Finance and Sage Intacct.

Each source gets a few customers, invoices in two currencies with several lines and tax, a
credit note applied to an invoice, one payment split across two invoices, a partial payment,
an overpayment that leaves cash unapplied, a soft-deleted row and rows whose amounts cannot
be read. Values are written the way each loader writes them (NetSuite's 'T'/'F', Dynamics'
'Yes'/'No' and `1900-01-01T00:00:00` for "no date", Intacct's base and `trx_` amounts).
The expected conformed values are worked out by hand in tests/test_source_erps.py.

`write_landing` writes one CSV per raw table under `<landing>/<source>/`, with every column
q2c reads in the header; `BROKEN_LINES` are appended as raw text after the good rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

from q2c.sources.schema import tables_of

Rows = dict[str, list[dict[str, str]]]

# ---------------------------------------------------------------------------------------
# NetSuite. Currencies: 1 USD (base), 2 EUR, 3 JPY.
#
# INV-1001 (EUR): items 10 x 80 = 800 and 4 x 75 = 300, a discount of 100, a printed
# subtotal of 1,100, tax 19% = 190 on 1,000: total 1,190.00. Credit memo CM-2001 (200 + 38
# tax = 238.00) is applied to it, payment 3001 pays the other 952.00: balance 0.
# INV-1002 (EUR, 500.00, no tax): payment 3001 pays 200.00 of it, balance 300.00. So 3001
# (1,152.00) is split across two invoices and fully applied.
# INV-1003 (JPY, 100,000 + 10% tax = 110,000): payment 3002 of 120,000 JPY pays it and
# leaves 10,000 JPY unapplied.
# INV-1004 is soft-deleted. INV-1005 has a line amount written with a decimal comma. The
# transaction row of 1006 has an unquoted '1,234.50', one field too many, so ingest
# quarantines it.
# ---------------------------------------------------------------------------------------
_NS_DELETED = {"_fivetran_deleted": "false", "_fivetran_synced": "2024-04-05 02:00:00"}


def _ns(**values: str) -> dict[str, str]:
    return {**_NS_DELETED, **values}


def _ns_line(transaction: str, line: str, **values: str) -> dict[str, str]:
    base = {"transaction": transaction, "id": line, "mainline": "F", "taxline": "F",
            "iscogs": "F"}
    return _ns(**(base | values))


NETSUITE: Rows = {
    "currency": [
        _ns(id="1", name="US Dollar", symbol="USD", displaysymbol="$", currencyprecision="2",
            isbasecurrency="T"),
        _ns(id="2", name="Euro", symbol="EUR", displaysymbol="€", currencyprecision="2",
            isbasecurrency="F"),
        _ns(id="3", name="Japanese Yen", symbol="JPY", displaysymbol="¥",
            currencyprecision="0", isbasecurrency="F"),
    ],
    "term": [_ns(id="1", name="Net 30", daysuntilnetdue="30", isinactive="F")],
    "entityaddress": [
        _ns(nkey="501", addressee="Nordwind GmbH", addr1="Hauptstraße 5", city="Berlin",
            zip="10115", country="DE"),
    ],
    "accountingperiod": [
        _ns(id="120", periodname="Mar 2024", startdate="2024-03-01 0:00:00",
            enddate="2024-03-31 0:00:00", closed="F", isadjust="F", isquarter="F",
            isyear="F", isposting="T"),
    ],
    "customer": [
        _ns(id="101", entityid="CUS-101 Nordwind", companyname="Nordwind GmbH",
            altname="Nordwind", isperson="F", email="AP@Nordwind.de", currency="2", terms="1",
            defaultbillingaddress="501", vatregnumber="DE811111111", emailtransactions="T",
            printtransactions="F", isinactive="F", balancesearch="1200.00",
            datecreated="2023-11-02 9:15:00", lastmodifieddate="2024-03-20 10:00:00"),
        _ns(id="102", entityid="CUS-102", companyname="Sakura Trading KK", isperson="F",
            email="keiri@sakura.example", currency="3", emailtransactions="F",
            printtransactions="T", isinactive="F"),
        _ns(id="103", entityid="CUS-103", companyname="Gone Ltd", currency="1",
            isinactive="F", _fivetran_deleted="true"),
    ],
    "transaction": [
        _ns(id="1001", tranid="INV-1001", type="CustInvc", entity="101", currency="2",
            exchangerate="1.085", trandate="2024-03-01 0:00:00",
            duedate="2024-03-31 0:00:00", otherrefnum="PO-77", email="ap@nordwind.de",
            memo="March delivery", foreigntotal="1190.00", postingperiod="120",
            createddate="2024-03-01 08:30:00", lastmodifieddate="2024-03-20 10:00:00"),
        _ns(id="1002", tranid="INV-1002", type="CustInvc", entity="101", currency="2",
            exchangerate="1.085", trandate="2024-03-05 0:00:00",
            duedate="2024-04-04 0:00:00", foreigntotal="500.00"),
        _ns(id="1003", tranid="INV-1003", type="CustInvc", entity="102", currency="3",
            exchangerate="0.0067", trandate="2024-03-10 0:00:00",
            duedate="2024-04-09 0:00:00", foreigntotal="110000"),
        _ns(id="1004", tranid="INV-1004", type="CustInvc", entity="101", currency="2",
            trandate="2024-03-11 0:00:00", duedate="2024-04-10 0:00:00",
            foreigntotal="75.00", _fivetran_deleted="true"),
        _ns(id="1005", tranid="INV-1005", type="CustInvc", entity="101", currency="2",
            trandate="2024-03-12 0:00:00", duedate="2024-04-11 0:00:00",
            foreigntotal="1234.50"),
        _ns(id="2001", tranid="CM-2001", type="CustCred", entity="101", currency="2",
            exchangerate="1.085", trandate="2024-03-15 0:00:00", memo="Damaged goods",
            foreigntotal="-238.00"),
        _ns(id="3001", tranid="PAY-3001", type="CustPymt", entity="101", currency="2",
            exchangerate="1.09", trandate="2024-03-20 0:00:00", otherrefnum="CHK-5521",
            foreigntotal="1152.00"),
        _ns(id="3002", tranid="PAY-3002", type="CustPymt", entity="102", currency="3",
            exchangerate="0.0066", trandate="2024-04-02 0:00:00", foreigntotal="120000"),
    ],
    "transactionline": [
        _ns_line("1001", "0", mainline="T", foreignamount="1190.00",
                 foreignamountunpaid="0.00"),
        _ns_line("1001", "1", linesequencenumber="1", item="11", itemtype="InvtPart",
                 memo="Widget", quantity="-10", rate="80", foreignamount="-800.00"),
        _ns_line("1001", "2", linesequencenumber="2", item="12", itemtype="Service",
                 memo="Installation", quantity="-4", rate="75", foreignamount="-300.00"),
        _ns_line("1001", "3", linesequencenumber="3", item="13", itemtype="Discount",
                 memo="Loyalty discount", rate="-100", foreignamount="100.00"),
        _ns_line("1001", "4", linesequencenumber="4", item="14", itemtype="Subtotal",
                 foreignamount="-1100.00"),
        _ns_line("1001", "5", linesequencenumber="5", item="9001", itemtype="TaxItem",
                 taxline="T", ratepercent="19", foreignamount="-190.00"),
        _ns_line("1001", "6", item="11", itemtype="InvtPart", iscogs="T",
                 foreignamount="-420.00"),
        _ns_line("1002", "0", mainline="T", foreignamount="500.00",
                 foreignamountunpaid="300.00"),
        _ns_line("1002", "1", linesequencenumber="1", item="12", itemtype="Service",
                 quantity="-1", rate="500", foreignamount="-500.00"),
        _ns_line("1003", "0", mainline="T", foreignamount="110000",
                 foreignamountunpaid="0"),
        _ns_line("1003", "1", linesequencenumber="1", item="11", itemtype="InvtPart",
                 quantity="-50", rate="2000", foreignamount="-100000"),
        _ns_line("1003", "2", linesequencenumber="2", item="9002", itemtype="TaxItem",
                 taxline="T", ratepercent="10", foreignamount="-10000"),
        _ns_line("1005", "0", mainline="T", foreignamount="1234.50",
                 foreignamountunpaid="1234.50"),
        _ns_line("1005", "1", linesequencenumber="1", item="12", itemtype="Service",
                 quantity="-1", rate="1234.5", foreignamount="-1.234,50"),
        _ns_line("2001", "0", mainline="T", foreignamount="-238.00", createdfrom="1001",
                 foreignpaymentamountunused="0.00"),
        _ns_line("2001", "1", linesequencenumber="1", item="12", itemtype="Service",
                 quantity="2", rate="100", foreignamount="200.00"),
        _ns_line("2001", "2", linesequencenumber="2", item="9001", itemtype="TaxItem",
                 taxline="T", ratepercent="19", foreignamount="38.00"),
        _ns_line("3001", "0", mainline="T", foreignamount="1152.00", paymentmethod="2",
                 foreignpaymentamountunused="0.00", foreignpaymentamountused="1152.00"),
        _ns_line("3002", "0", mainline="T", foreignamount="120000", paymentmethod="5",
                 foreignpaymentamountunused="10000", foreignpaymentamountused="110000"),
    ],
    "transactionaccountingline": [
        _ns(transaction="1001", transactionline="0", accountingbook="1", account="119",
            amount="1291.15", posting="T"),
        _ns(transaction="1001", transactionline="0", accountingbook="2", account="119",
            amount="1309.00", posting="T"),
    ],
    "previoustransactionlinelink": [
        _ns(previousdoc="1001", previousline="0", previoustype="CustInvc", nextdoc="2001",
            nextline="0", nexttype="CustCred", linktype="Payment", foreignamount="238.00"),
        _ns(previousdoc="1001", previousline="0", previoustype="CustInvc", nextdoc="3001",
            nextline="1", nexttype="CustPymt", linktype="Payment", foreignamount="952.00"),
        _ns(previousdoc="1002", previousline="0", previoustype="CustInvc", nextdoc="3001",
            nextline="2", nexttype="CustPymt", linktype="Payment", foreignamount="200.00"),
        _ns(previousdoc="1003", previousline="0", previoustype="CustInvc", nextdoc="3002",
            nextline="1", nexttype="CustPymt", linktype="Payment", foreignamount="110000"),
        _ns(previousdoc="1004", previousline="0", previoustype="CustInvc", nextdoc="3001",
            nextline="3", nexttype="CustPymt", linktype="Payment", foreignamount="75.00",
            _fivetran_deleted="true"),
    ],
}

# ---------------------------------------------------------------------------------------
# Dynamics 365 Finance, legal entity DEMF (exported as 'DEMF', ids use 'demf').
#
# CIV-0001 (EUR, Net30 from 2024-03-05): 10 x 120 = 1,200 + 228 tax and 2 x 150 = 300 +
# 57 tax: total 1,785.00, tax 285.00. Credit note CCN-0001 (-100 - 19 tax = -119.00) is
# settled against it on journal line 2 (amount 0); voucher ARP-0001 (line 1, 1,966.00)
# settles 1,666.00 of CIV-0001 and 300.00 of CIV-0002 (595.00): balances 0 and 295.00.
# CIV-0003 (KWD, 3 decimals, CurrentMonth + 15 days from 2024-03-10, so due 2024-04-15):
# 3 x 125.250 = 375.750 and 1 x 50.125: 425.875. Voucher ARP-0003 marks it with 450.000
# KWD: 425.875 settle it, 24.125 stay unapplied. CIV-0004 is soft-deleted; CIV-0005 has a
# total written with a decimal comma. The settlement of CIV-0002 carries Dynamics' empty
# due date 1900-01-01, so its due date comes from Net30: 2024-04-07.
# ---------------------------------------------------------------------------------------
def _dx(**values: str) -> dict[str, str]:
    return {"dataareaid": "DEMF", "_fivetran_deleted": "false",
            "_fivetran_synced": "2024-04-05 02:00:00", **values}


def _dx_line(invoice: str, seq: str, **values: str) -> dict[str, str]:
    return _dx(invoicenumber=invoice, linecreationsequencenumber=seq, **values)


def _dx_settled(line: str, invoice: str, amount: str, due: str) -> dict[str, str]:
    return {"journallinecompany": "DEMF", "journalbatchnumber": "CPJ-0100",
            "journallinenumber": line, "invoicecompany": "DEMF", "invoicenumber": invoice,
            "invoiceduedate": due, "settlementamountininvoicecurrency": amount,
            "_fivetran_deleted": "false"}


DYNAMICS365: Rows = {
    "paymenttermentity": [
        _dx(name="Net30", description="Net 30 days", paymentmethodtype="Net",
            numberofdays="30", numberofmonths="0"),
        _dx(name="CM15", description="Current month + 15 days",
            paymentmethodtype="CurrentMonth", numberofdays="15", numberofmonths="0"),
    ],
    "custcustomerv3entity": [
        _dx(customeraccount="DE-001", partytype="Organization",
            organizationname="Kranich Maschinenbau AG", invoiceaccount="DE-001",
            salescurrencycode="EUR", paymentterms="Net30",
            primarycontactemail="Rechnung@Kranich.example", addressstreet="Werkstraße 12",
            addresscity="Stuttgart", addresszipcode="70173", addresscountryregionid="DEU",
            addresscountryregionisocode="DE", taxexemptnumber="DE123456789",
            creditlimit="50000.00", onholdstatus="No"),
        _dx(customeraccount="DE-002", partytype="Organization",
            organizationname="Kranich Service GmbH", invoiceaccount="DE-001",
            salescurrencycode="EUR", paymentterms="Net30", onholdstatus="All"),
        _dx(customeraccount="KW-001", partytype="Organization",
            organizationname="Gulf Trading Co", invoiceaccount="KW-001",
            salescurrencycode="KWD", paymentterms="CM15", addresscity="Kuwait City",
            addresscountryregionid="KWT", addresscountryregionisocode="KW",
            onholdstatus="No"),
        _dx(customeraccount="DE-099", organizationname="Closed Account",
            _fivetran_deleted="true"),
    ],
    "salesinvoiceheaderv2entity": [
        _dx(invoicenumber="CIV-0001", invoicedate="2024-03-05T00:00:00",
            invoicecustomeraccountnumber="DE-001", salesordernumber="SO-0042",
            customersorderreference="PO-9001", currencycode="EUR", paymenttermsname="Net30",
            totalinvoiceamount="1785.00", totaltaxamount="285.00", totaldiscountamount="0"),
        _dx(invoicenumber="CIV-0002", invoicedate="2024-03-08T00:00:00",
            invoicecustomeraccountnumber="DE-001", currencycode="EUR",
            paymenttermsname="Net30", totalinvoiceamount="595.00", totaltaxamount="95.00"),
        _dx(invoicenumber="CIV-0003", invoicedate="2024-03-10T00:00:00",
            invoicecustomeraccountnumber="KW-001", currencycode="KWD",
            paymenttermsname="CM15", totalinvoiceamount="425.875", totaltaxamount="0.000"),
        _dx(invoicenumber="CCN-0001", invoicedate="2024-03-12T00:00:00",
            invoicecustomeraccountnumber="DE-001", currencycode="EUR",
            paymenttermsname="Net30", totalinvoiceamount="-119.00", totaltaxamount="-19.00"),
        _dx(invoicenumber="CIV-0004", invoicedate="2024-03-13T00:00:00",
            invoicecustomeraccountnumber="DE-001", currencycode="EUR",
            totalinvoiceamount="80.00", _fivetran_deleted="true"),
        _dx(invoicenumber="CIV-0005", invoicedate="2024-03-14T00:00:00",
            invoicecustomeraccountnumber="DE-001", currencycode="EUR",
            paymenttermsname="Net30", totalinvoiceamount="1.234,56", totaltaxamount="0"),
    ],
    "salesinvoicelinev2entity": [
        _dx_line("CIV-0001", "1", productnumber="M-100", productname="Spindle motor",
                 invoicedquantity="10.000000", salesprice="120.000000",
                 lineamount="1200.000000", linetotaltaxamount="228.000000",
                 currencycode="EUR"),
        _dx_line("CIV-0001", "2", productnumber="S-200", productname="Commissioning",
                 invoicedquantity="2", salesprice="150", lineamount="300.00",
                 linetotaltaxamount="57.00", currencycode="EUR"),
        _dx_line("CIV-0002", "1", productnumber="S-200", productname="Commissioning",
                 invoicedquantity="1", salesprice="500", lineamount="500.00",
                 linetotaltaxamount="95.00", currencycode="EUR"),
        _dx_line("CIV-0003", "1", productnumber="M-100", productname="Spindle motor",
                 invoicedquantity="3", salesprice="125.250", lineamount="375.750",
                 linetotaltaxamount="0.000", currencycode="KWD"),
        _dx_line("CIV-0003", "2", productnumber="F-001", productname="Freight",
                 invoicedquantity="1", salesprice="50.125", lineamount="50.125",
                 linetotaltaxamount="0", currencycode="KWD"),
        _dx_line("CCN-0001", "1", productnumber="S-200", productname="Commissioning",
                 invoicedquantity="-1", salesprice="100", lineamount="-100.00",
                 linetotaltaxamount="-19.00", currencycode="EUR"),
    ],
    "customerpaymentjournallineentity": [
        _dx(journalbatchnumber="CPJ-0100", linenumber="1.0000000000000000",
            voucher="ARP-0001", accounttype="Cust", accountdisplayvalue="DE-001",
            transactiondate="2024-03-28T00:00:00", currencycode="EUR",
            exchangerate="100.0000", creditamount="1966.00", debitamount="0.00",
            paymentmethodname="SEPA", paymentreference="RF18 5390 0754 7034",
            settlevoucher="SelectedTransact", isprepayment="No"),
        _dx(journalbatchnumber="CPJ-0100", linenumber="2.0000000000000000",
            voucher="ARP-0002", accounttype="Cust", accountdisplayvalue="DE-001",
            transactiondate="2024-03-29T00:00:00", currencycode="EUR",
            exchangerate="100.0000", creditamount="0.00", debitamount="0.00",
            settlevoucher="SelectedTransact", isprepayment="No"),
        _dx(journalbatchnumber="CPJ-0100", linenumber="3.0000000000000000",
            voucher="ARP-0003", accounttype="Cust", accountdisplayvalue="KW-001",
            transactiondate="2024-04-02T00:00:00", currencycode="KWD",
            exchangerate="297.5000", creditamount="450.000", debitamount="0",
            paymentmethodname="WIRE", markedinvoice="CIV-0003", settlevoucher="MarkInvoice",
            isprepayment="No"),
        _dx(journalbatchnumber="CPJ-0100", linenumber="4.0000000000000000",
            voucher="ARP-0004", accounttype="Cust", accountdisplayvalue="DE-001",
            transactiondate="2024-04-03T00:00:00", currencycode="EUR",
            creditamount="80.00", markedinvoice="CIV-0004", _fivetran_deleted="true"),
    ],
    "customerpaymentjournallinesettledinvoiceentity": [
        _dx_settled("1", "CIV-0001", "1666.00", "2024-04-04T00:00:00"),
        _dx_settled("1", "CIV-0002", "300.00", "1900-01-01T00:00:00"),
        _dx_settled("2", "CIV-0001", "119.00", "2024-04-04T00:00:00"),
        _dx_settled("2", "CCN-0001", "-119.00", "1900-01-01T00:00:00"),
    ],
}

# ---------------------------------------------------------------------------------------
# Sage Intacct, base currency USD.
#
# INV-5001 (USD): consulting 600.00 + licence 400.00 + sales tax 8.125% = 81.25 (a line
# Intacct added, lineitem false): 1,081.25. Credit memo CM-7001 (-250.00) is applied to
# it by payment 8002 (total 0); payment 8001 (1,081.25) pays its other 831.25 and 250.00
# of INV-5002 (400.00, due 150.00).
# INV-5003 (JPY 300,000 + 10% tax = 330,000; base 2,211.00 at 0.0067): payment 8003 of
# 350,000 JPY pays it and leaves 20,000 JPY unapplied.
# INV-5004 is soft-deleted, INV-5005 a draft (not issued); INV-5006 has 'N/A' as total.
# ---------------------------------------------------------------------------------------
def _si(**values: str) -> dict[str, str]:
    return {"_fivetran_deleted": "false", "_fivetran_synced": "2024-03-05 02:00:00",
            **values}


def _si_invoice(recordno: str, number: str, **values: str) -> dict[str, str]:
    return _si(recordno=recordno, recordid=number, recordtype="ri", basecurr="USD",
               **values)


SAGE_INTACCT: Rows = {
    "customer": [
        _si(recordno="1", customerid="C-100", name="Harbor Freight Partners", status="active",
            currency="USD", termname="Net 30", taxid="94-1234567",
            delivery_options="Print#~#E-Mail",
            displaycontact_companyname="Harbor Freight Partners LLC",
            displaycontact_contactname="Dana Reyes",
            displaycontact_email1="AR@HarborFreight.example",
            displaycontact_mailaddress_address1="400 Pier Ave",
            displaycontact_mailaddress_address2="Suite 9",
            displaycontact_mailaddress_city="Oakland", displaycontact_mailaddress_state="CA",
            displaycontact_mailaddress_zip="94607", displaycontact_mailaddress_country="US",
            totaldue="150.00", whencreated="2023-06-01 17:04:11"),
        _si(recordno="2", customerid="C-200", name="Osaka Components", status="active",
            currency="JPY", delivery_options="Print"),
        _si(recordno="3", customerid="C-300", name="Old Customer", status="inactive",
            _fivetran_deleted="true"),
    ],
    "ar_invoice": [
        _si_invoice("9001", "INV-5001", customerid="C-100", currency="USD",
                    docnumber="PO-314", description="February services", state="Paid",
                    totalentered="1081.25", totaldue="0", totalpaid="1081.25",
                    whencreated="2024-02-01", whendue="2024-03-02",
                    auwhencreated="2024-02-01 18:22:05", whenmodified="2024-02-25 09:00:00"),
        _si_invoice("9002", "INV-5002", customerid="C-100", currency="USD",
                    state="Partially Paid", totalentered="400.00", totaldue="150.00",
                    totalpaid="250.00", whencreated="2024-02-05", whendue="2024-03-06"),
        _si_invoice("9003", "INV-5003", customerid="C-200", currency="JPY",
                    exchange_rate="0.0067", state="Paid", totalentered="2211.00",
                    totaldue="0", trx_totalentered="330000", trx_totaldue="0",
                    trx_totalpaid="330000", whencreated="2024-02-10", whendue="2024-03-11"),
        _si_invoice("9004", "INV-5004", customerid="C-100", currency="USD", state="Posted",
                    totalentered="99.00", totaldue="99.00", whencreated="2024-02-11",
                    whendue="2024-03-12", _fivetran_deleted="true"),
        _si_invoice("9005", "INV-5005", customerid="C-100", currency="USD", state="Draft",
                    totalentered="55.00", totaldue="55.00", whencreated="2024-02-12",
                    whendue="2024-03-13"),
        _si_invoice("9006", "INV-5006", customerid="C-100", currency="USD", state="Posted",
                    totalentered="N/A", totaldue="N/A", whencreated="2024-02-13",
                    whendue="2024-03-14"),
    ],
    "ar_invoice_item": [
        _si(recordno="90011", recordkey="9001", line_no="1", lineitem="true", itemid="SVC-1",
            itemname="Consulting", entrydescription="February consulting",
            accountno="4000", amount="600.00", currency="USD"),
        _si(recordno="90012", recordkey="9001", line_no="2", lineitem="true", itemid="LIC-1",
            itemname="Licence", accountno="4100", amount="400.00", currency="USD"),
        _si(recordno="90013", recordkey="9001", line_no="3", lineitem="false",
            entrydescription="Sales tax 8.125%", accountno="2200", amount="81.25",
            currency="USD"),
        _si(recordno="90021", recordkey="9002", line_no="1", lineitem="true", itemid="SVC-1",
            itemname="Consulting", accountno="4000", amount="400.00", currency="USD"),
        _si(recordno="90031", recordkey="9003", line_no="1", lineitem="true", itemid="PRT-9",
            itemname="Bearings", accountno="4000", amount="2010.00", trx_amount="300000",
            currency="JPY", exchange_rate="0.0067"),
        _si(recordno="90032", recordkey="9003", line_no="2", lineitem="false",
            entrydescription="Consumption tax 10%", accountno="2210", amount="201.00",
            trx_amount="30000", currency="JPY", exchange_rate="0.0067"),
        _si(recordno="90051", recordkey="9005", line_no="1", lineitem="true", itemid="SVC-1",
            amount="55.00", currency="USD"),
    ],
    "ar_adjustment": [
        _si(recordno="7001", recordid="CM-7001", recordtype="ra", customerid="C-100",
            description="Service credit", state="Paid", currency="USD", basecurr="USD",
            totalentered="-250.00", totaldue="0.00", whencreated="2024-02-20"),
    ],
    "ar_payment": [
        _si(recordno="8001", recordid="PMT-8001", recordtype="rp", customerid="C-100",
            docnumber="CHK 1042", paymentmethod="Printed Check", state="Confirmed",
            currency="USD", basecurr="USD", totalentered="1081.25",
            whencreated="2024-02-27", whenpaid="2024-02-26"),
        _si(recordno="8002", recordid="PMT-8002", recordtype="rp", customerid="C-100",
            paymentmethod="Credit Memo", state="Confirmed", currency="USD",
            basecurr="USD", totalentered="0", whencreated="2024-02-21"),
        _si(recordno="8003", recordid="PMT-8003", recordtype="rp", customerid="C-200",
            paymentmethod="EFT", state="Confirmed", currency="JPY", basecurr="USD",
            exchange_rate="0.0067", totalentered="2345.00", trx_totalentered="350000",
            whencreated="2024-03-01", whenpaid="2024-03-01"),
        _si(recordno="8004", recordid="PMT-8004", recordtype="rp", customerid="C-100",
            currency="USD", totalentered="99.00", whencreated="2024-03-02",
            _fivetran_deleted="true"),
    ],
    "ar_payment_detail": [
        _si(recordno="80011", paymentkey="8001", recordkey="9001", currency="USD",
            paymentamount="831.25", paymentdate="2024-02-26"),
        _si(recordno="80012", paymentkey="8001", recordkey="9002", currency="USD",
            paymentamount="250.00", paymentdate="2024-02-26"),
        _si(recordno="80021", paymentkey="8002", recordkey="9001", adjustmentkey="7001",
            currency="USD", paymentamount="0", adjustmentamount="250.00",
            paymentdate="2024-02-21"),
        _si(recordno="80031", paymentkey="8003", recordkey="9003", currency="JPY",
            paymentamount="2211.00", trx_paymentamount="330000", paymentdate="2024-03-01"),
        _si(recordno="80041", paymentkey="8004", recordkey="9004", currency="USD",
            paymentamount="99.00", paymentdate="2024-03-02", _fivetran_deleted="true"),
    ],
}

FIXTURES: dict[str, Rows] = {
    "netsuite": NETSUITE, "dynamics365": DYNAMICS365, "sage_intacct": SAGE_INTACCT,
}

# Raw CSV lines appended to a table's file: (source, table) -> lines. The `transaction`
# line of 1006 carries an unquoted thousands separator, so it has one field too many.
BROKEN_LINES: dict[tuple[str, str], list[str]] = {}


def _broken_transaction_line() -> str:
    """Transaction 1006 as a careless export writes it: `1,234.50` without quotes."""
    header = next(t for t in tables_of("netsuite") if t.name == "transaction").columns
    values = {"id": "1006", "tranid": "INV-1006", "type": "CustInvc", "entity": "101",
              "currency": "2", "trandate": "2024-03-13 0:00:00", "foreigntotal": "1,234.50",
              "_fivetran_deleted": "false"}
    return ",".join(values.get(column, "") for column in header)


BROKEN_LINES[("netsuite", "transaction")] = [_broken_transaction_line()]


def write_landing(landing: Path, source: str) -> dict[str, Path]:
    """Write every raw table of `source` as `<landing>/<source>/<table>.csv`."""
    folder = landing / source
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for table in tables_of(source):
        path = folder / f"{table.name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table.columns))
            writer.writeheader()
            for row in FIXTURES[source].get(table.name, []):
                writer.writerow(row)
            for line in BROKEN_LINES.get((source, table.name), []):
                handle.write(line + "\r\n")
        written[table.name] = path
    return written
