"""Dynamics 365 Finance data entities as exported (entity store, BYOD or a loading tool).

Each table is one data entity, named after it and lower-cased, with the entity's field
names lower-cased (`TotalInvoiceAmount` -> `totalinvoiceamount`). Every record belongs to a
legal entity (`dataareaid`); ids are unique only within it. Dates arrive as
`2024-03-15T00:00:00`, and Dynamics writes `1900-01-01T00:00:00` for "no date".
"""

from q2c.sources.raw_table import SYNC, RawTable
from q2c.sources.raw_table import columns as _cols

_DELETED = "_fivetran_deleted"

TABLES = (
    RawTable(
        "dynamics365", "custcustomerv3entity", ("dataareaid", "customeraccount"),
        _cols(f"""dataareaid customeraccount partytype organizationname namealias
        personfirstname personlastname customergroupid invoiceaccount salescurrencycode
        paymentterms paymentmethod deliverymode primarycontactemail primarycontactphone
        primarycontacturl addressstreet addresscity addresszipcode addressstate
        addresscountryregionid addresscountryregionisocode taxexemptnumber creditlimit
        onholdstatus {_DELETED} {SYNC}"""),
        _DELETED,
        required=True,
    ),
    RawTable(
        "dynamics365", "paymenttermentity", ("dataareaid", "name"),
        _cols(f"""dataareaid name description paymentmethodtype numberofdays numberofmonths
        cutoffdayofmonth {_DELETED} {SYNC}"""),
        _DELETED,
    ),
    RawTable(
        "dynamics365", "salesinvoiceheaderv2entity", ("dataareaid", "invoicenumber"),
        _cols(f"""dataareaid invoicenumber invoicedate invoicecustomeraccountnumber
        salesordernumber customersorderreference currencycode paymenttermsname
        totalinvoiceamount totaltaxamount totaldiscountamount totalchargeamount
        invoiceheadertaxamount deliverymodecode ledgervoucher contactpersonid
        {_DELETED} {SYNC}"""),
        _DELETED,
        required=True,
    ),
    RawTable(
        "dynamics365", "salesinvoicelinev2entity",
        ("dataareaid", "invoicenumber", "linecreationsequencenumber"),
        _cols(f"""dataareaid invoicenumber linecreationsequencenumber invoicedate
        productnumber productname productdescription invoicedquantity salesunitsymbol
        salesprice linetotaldiscountamount linetotalchargeamount linetotaltaxamount
        lineamount currencycode ledgervoucher {_DELETED} {SYNC}"""),
        _DELETED,
        required=True,
    ),
    RawTable(
        "dynamics365", "customerpaymentjournallineentity",
        ("dataareaid", "journalbatchnumber", "linenumber"),
        _cols(f"""dataareaid journalbatchnumber linenumber voucher accounttype
        accountdisplayvalue customername transactiondate currencycode exchangerate
        creditamount debitamount paymentmethodname paymentreference paymentid
        markedinvoice markedinvoicecompany settlevoucher isprepayment transactiontext
        {_DELETED} {SYNC}"""),
        _DELETED,
    ),
    RawTable(
        "dynamics365", "customerpaymentjournallinesettledinvoiceentity",
        ("journallinecompany", "journalbatchnumber", "journallinenumber", "invoicecompany",
         "invoicenumber"),
        _cols(f"""journallinecompany journalbatchnumber journallinenumber invoicecompany
        invoicenumber invoiceduedate invoiceaccount accountdisplayvalue
        settlementamountininvoicecurrency cashdiscounttotakeininvoicecurrency
        invoicetopaymentcrossrate {_DELETED} {SYNC}"""),
        _DELETED,
    ),
)
