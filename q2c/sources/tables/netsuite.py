"""NetSuite records in the shape of Fivetran's NetSuite connector (SuiteAnalytics Connect).

Fivetran lands NetSuite2 tables under their SuiteAnalytics names (`transaction`,
`transactionline`, ...) with NetSuite's own lower-case column names. Sales documents share
one `transaction` table told apart by `type`: CustInvc (invoice), CustCred (credit memo),
CustPymt (customer payment). Applications of payments and credit memos to invoices are the
rows of `previoustransactionlinelink`.
"""

from q2c.sources.raw_table import SYNC, RawTable
from q2c.sources.raw_table import columns as _cols

_DELETED = "_fivetran_deleted"

TABLES = (
    RawTable(
        "netsuite", "customer", ("id",),
        _cols(f"""id entityid externalid parent isperson companyname altname firstname
        lastname email phone url currency terms defaultbillingaddress vatregnumber
        balancesearch emailtransactions printtransactions isinactive datecreated
        lastmodifieddate {_DELETED} {SYNC}"""),
        _DELETED,
        required=True,
    ),
    RawTable(
        "netsuite", "entityaddress", ("nkey",),
        _cols(f"nkey addressee addr1 addr2 addr3 city state zip country {_DELETED} {SYNC}"),
        _DELETED,
    ),
    RawTable(
        "netsuite", "term", ("id",),
        _cols(f"id name daysuntilnetdue isinactive {_DELETED} {SYNC}"),
        _DELETED,
    ),
    RawTable(
        "netsuite", "currency", ("id",),
        _cols(f"""id name symbol displaysymbol currencyprecision isbasecurrency isinactive
        exchangerate lastmodifieddate {_DELETED} {SYNC}"""),
        _DELETED,
        required=True,
    ),
    RawTable(
        "netsuite", "accountingperiod", ("id",),
        _cols(f"""id parent periodname startdate enddate closed isadjust isquarter isyear
        isposting {_DELETED} {SYNC}"""),
        _DELETED,
    ),
    RawTable(
        "netsuite", "transaction", ("id",),
        _cols(f"""id tranid transactionnumber type status entity currency exchangerate
        trandate duedate closedate postingperiod terms otherrefnum memo email foreigntotal
        createddate lastmodifieddate {_DELETED} {SYNC}"""),
        _DELETED,
        required=True,
    ),
    RawTable(
        "netsuite", "transactionline", ("transaction", "id"),
        _cols(f"""transaction id linesequencenumber mainline taxline item itemtype memo
        quantity rate ratepercent foreignamount netamount iscogs foreignamountunpaid
        foreignpaymentamountunused foreignpaymentamountused createdfrom paymentmethod
        linelastmodifieddate {_DELETED} {SYNC}"""),
        _DELETED,
        required=True,
    ),
    RawTable(
        "netsuite", "transactionaccountingline", ("transaction", "transactionline",
                                                 "accountingbook"),
        _cols(f"""transaction transactionline accountingbook account amount netamount
        credit debit amountpaid amountunpaid posting {_DELETED} {SYNC}"""),
        _DELETED,
    ),
    RawTable(
        "netsuite", "previoustransactionlinelink",
        ("previousdoc", "previousline", "nextdoc", "nextline"),
        _cols(f"""previousdoc previousline previoustype nextdoc nextline nexttype linktype
        amount foreignamount lastmodifieddate {_DELETED} {SYNC}"""),
        _DELETED,
    ),
)
