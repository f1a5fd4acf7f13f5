"""Stripe objects in the Fivetran Stripe connector's shape.

Amounts are integers in the currency's smallest unit (cents, yen, fils) and currency codes
are lower case, exactly as Stripe's API writes them; staging converts both. `created` and
the other timestamps are UTC. Customers and invoices carry Fivetran's `is_deleted`; the
other objects are never deleted in Stripe, only voided, failed or canceled by status.
Invoice line ids are unique only within their invoice (legacy subscription lines reuse the
subscription id), so that table is keyed by both.
"""

from q2c.sources.raw_table import SYNC, RawTable
from q2c.sources.raw_table import columns as _cols

TABLES = (
    RawTable(
        "stripe", "customer", ("id",),
        _cols(f"""id name email description phone currency balance address_line_1
        address_line_2 address_city address_postal_code address_state address_country
        tax_info_tax_id tax_exempt delinquent invoice_prefix metadata livemode created
        is_deleted {SYNC}"""),
        "is_deleted",
    ),
    RawTable(
        "stripe", "invoice", ("id",),
        _cols(f"""id number customer_id subscription_id charge_id payment_intent_id
        currency status billing_reason description metadata subtotal tax tax_percent total
        amount_due amount_paid amount_remaining pre_payment_credit_notes_amount
        post_payment_credit_notes_amount attempt_count paid livemode created due_date
        period_start period_end status_transitions_finalized_at status_transitions_paid_at
        status_transitions_marked_uncollectible_at status_transitions_voided_at
        is_deleted {SYNC}"""),
        "is_deleted",
        required=True,
    ),
    RawTable(
        "stripe", "invoice_line_item", ("id", "invoice_id"),
        _cols(f"""id invoice_id invoice_item_id subscription_id subscription_item_id
        price_id plan_id type description currency amount quantity
        unit_amount_excluding_tax discountable proration livemode period_start period_end
        {SYNC}"""),
        required=True,
    ),
    RawTable(
        "stripe", "charge", ("id",),
        _cols(f"""id customer_id invoice_id payment_intent_id balance_transaction_id
        payment_method_id card_id currency amount amount_refunded application_fee_amount
        status paid captured refunded failure_code failure_message description
        statement_descriptor receipt_number receipt_email metadata livemode created
        {SYNC}"""),
    ),
    RawTable(
        "stripe", "payment_intent", ("id",),
        _cols(f"""id customer_id payment_method_id currency amount amount_received
        amount_capturable status description metadata capture_method cancellation_reason
        canceled_at livemode created {SYNC}"""),
    ),
    RawTable(
        "stripe", "refund", ("id",),
        _cols(f"""id charge_id payment_intent_id balance_transaction_id
        failure_balance_transaction_id currency amount status reason description
        receipt_number metadata created {SYNC}"""),
    ),
    RawTable(
        "stripe", "credit_note", ("id",),
        _cols(f"""id number invoice_id refund_id customer_balance_transaction_id currency
        amount subtotal discount_amount total status type reason memo metadata livemode
        created voided_at {SYNC}"""),
    ),
    RawTable(
        "stripe", "credit_note_line_item", ("id",),
        _cols(f"""id credit_note_id type description amount discount_amount quantity
        unit_amount unit_amount_decimal livemode {SYNC}"""),
    ),
    RawTable(
        "stripe", "balance_transaction", ("id",),
        _cols(f"""id source payout_id type reporting_category status description currency
        amount fee net exchange_rate available_on created connected_account_id {SYNC}"""),
    ),
    RawTable(
        "stripe", "payout", ("id",),
        _cols(f"""id balance_transaction_id failure_balance_transaction_id
        destination_bank_account_id destination_card_id currency amount status type method
        source_type automatic description statement_descriptor failure_code
        failure_message metadata livemode arrival_date created {SYNC}"""),
    ),
    RawTable(
        "stripe", "dispute", ("id",),
        _cols(f"""id charge_id balance_transaction currency amount status reason
        is_charge_refundable metadata livemode created {SYNC}"""),
    ),
)
