"""Sage Intacct objects in the shape of Fivetran's Sage Intacct connector.

Fivetran lands each Intacct object as a table (ARINVOICE -> `ar_invoice`) with Intacct's
field names lower-cased (`TOTALENTERED` -> `totalentered`, `DISPLAYCONTACT.EMAIL1` ->
`displaycontact_email1`). Amounts without a prefix are in the company's base currency;
`trx_` amounts are in the document's own currency. Credit memos are AR adjustments; both
cash and credits reach invoices through the detail lines of an AR payment.
"""

from q2c.sources.raw_table import SYNC, RawTable
from q2c.sources.raw_table import columns as _cols

_DELETED = "_fivetran_deleted"

TABLES = (
    RawTable(
        "sage_intacct", "customer", ("recordno",),
        _cols(f"""recordno customerid name parentid status currency termname taxid
        delivery_options displaycontact_companyname displaycontact_contactname
        displaycontact_email1 displaycontact_url1 displaycontact_mailaddress_address1
        displaycontact_mailaddress_address2 displaycontact_mailaddress_city
        displaycontact_mailaddress_state displaycontact_mailaddress_zip
        displaycontact_mailaddress_country totaldue whencreated whenmodified
        {_DELETED} {SYNC}"""),
        _DELETED,
        required=True,
    ),
    RawTable(
        "sage_intacct", "ar_invoice", ("recordno",),
        _cols(f"""recordno recordid recordtype docnumber customerid customername
        description state currency basecurr exchange_rate totalentered totaldue totalpaid
        trx_totalentered trx_totaldue trx_totalpaid termname due_in_days whencreated
        whendue whenposted whenpaid whenmodified auwhencreated billtopaytokey
        {_DELETED} {SYNC}"""),
        _DELETED,
        required=True,
    ),
    RawTable(
        "sage_intacct", "ar_invoice_item", ("recordno",),
        _cols(f"""recordno recordkey line_no lineitem itemid itemname entrydescription
        accountno amount trx_amount currency basecurr exchange_rate customerid
        whencreated whenmodified {_DELETED} {SYNC}"""),
        _DELETED,
        required=True,
    ),
    RawTable(
        "sage_intacct", "ar_adjustment", ("recordno",),
        _cols(f"""recordno recordid recordtype docnumber customerid description state
        currency basecurr exchange_rate totalentered totaldue totalpaid trx_totalentered
        trx_totaldue trx_totalpaid whencreated whenposted whenmodified {_DELETED} {SYNC}"""),
        _DELETED,
    ),
    RawTable(
        "sage_intacct", "ar_payment", ("recordno",),
        _cols(f"""recordno recordid recordtype docnumber customerid paymentmethod state
        description currency basecurr exchange_rate totalentered totalpaid
        trx_totalentered trx_totalpaid whencreated whenpaid whenmodified
        {_DELETED} {SYNC}"""),
        _DELETED,
    ),
    RawTable(
        "sage_intacct", "ar_payment_detail", ("recordno",),
        _cols(f"""recordno paymentkey paymentdate recordkey entrykey adjustmentkey
        adjustmententrykey currency trx_paymentamount paymentamount trx_adjustmentamount
        adjustmentamount whenmodified {_DELETED} {SYNC}"""),
        _DELETED,
    ),
)
