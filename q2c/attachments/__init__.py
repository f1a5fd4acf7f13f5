"""Supporting documents that go with an invoice: contract, statement of work, proof of
delivery and an account statement generated from the AR data.

- `rules`: which documents an invoice needs, by account segment, country or attribute, and
  whether each is required, attached to the email, embedded in the PDF, and how large.
- `layout`, `repository`: where they are kept, a folder or an S3 bucket, keyed on the
  invoice's account, quote, order and invoice ids, with every id checked before it
  becomes a path or a key.
- `statement`: the account statement, rendered from governed content.
- `planning`: one invoice's `AttachmentPlan`; `nightly`: the delivery step's plans and
  holds; `embed`: the documents embedded in the invoice PDF.
"""

from q2c.attachments.facts import InvoiceFacts, load_invoice_facts
from q2c.attachments.layout import PLACEHOLDERS, MissingIdError, UnsafeIdError, safe_id
from q2c.attachments.nightly import HOLD_PREFIX, HOLD_SUITE, AttachmentRun, plan_for_delivery
from q2c.attachments.planning import (
    AttachmentPlan,
    MissingAttachment,
    PlannedAttachment,
    plan_attachments,
)
from q2c.attachments.repository import (
    DocumentRepository,
    LocalRepository,
    RepositoryDocument,
    RepositoryError,
    S3Repository,
    open_repository,
)
from q2c.attachments.rules import (
    DEFAULT_RULES_FILE,
    AttachmentRule,
    AttachmentRules,
    AttachmentRulesError,
    load_rules,
    parse_rules,
)

__all__ = [
    "DEFAULT_RULES_FILE", "HOLD_PREFIX", "HOLD_SUITE", "PLACEHOLDERS", "AttachmentPlan",
    "AttachmentRule", "AttachmentRules", "AttachmentRulesError", "AttachmentRun",
    "DocumentRepository", "InvoiceFacts", "LocalRepository", "MissingAttachment",
    "MissingIdError", "PlannedAttachment", "RepositoryDocument", "RepositoryError",
    "S3Repository", "UnsafeIdError", "load_invoice_facts", "load_rules", "open_repository",
    "parse_rules", "plan_attachments", "plan_for_delivery", "safe_id",
]
