"""Review before sending: a policy marks invoices a person approves before they leave.

- `policy`: the rules as data (`q2c/review_policy.yaml` by default) and `evaluate`.
- `queue`: the review queue in the operational store, decisions with who and when, and the
  release gate the delivery step asks before anything enters the outbox.
- `candidates`: the facts the rules need, read from the warehouse marts.
- `export`: copies of the queue and its history in `q2c_ops` for the dbt marts.

Nothing here imports Dagster, dbt or DuckDB at import time, so `q2c review` starts fast.
"""

from q2c.review.export import REVIEW_WAREHOUSE_DDL, ensure_review_warehouse_tables, export_review
from q2c.review.policy import (
    CREDIT_NOTE,
    INVOICE,
    ReviewCandidate,
    ReviewPolicy,
    ReviewPolicyError,
    ReviewRequirement,
    default_policy_path,
    evaluate,
    load_policy,
)
from q2c.review.queue import (
    APPROVED,
    PENDING,
    REJECTED,
    AlreadyDecidedError,
    GateResult,
    ReviewDecision,
    ReviewError,
    ReviewItem,
    ReviewQueue,
    UnknownInvoiceError,
)

__all__ = [
    "APPROVED",
    "CREDIT_NOTE",
    "INVOICE",
    "PENDING",
    "REJECTED",
    "REVIEW_WAREHOUSE_DDL",
    "AlreadyDecidedError",
    "GateResult",
    "ReviewCandidate",
    "ReviewDecision",
    "ReviewError",
    "ReviewItem",
    "ReviewPolicy",
    "ReviewPolicyError",
    "ReviewQueue",
    "ReviewRequirement",
    "UnknownInvoiceError",
    "default_policy_path",
    "ensure_review_warehouse_tables",
    "evaluate",
    "export_review",
    "load_policy",
]
