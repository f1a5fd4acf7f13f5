"""The dunning policy: stages by days past due, each with its governed templates and channels.

The policy is data (`content/dunning/policy.yaml`, or the file in Q2C_DUNNING_POLICY), kept
beside the governed content it names and versioned like it: every version records who
approved it and when, and from which day it is in effect. A stage says:

- `name`: how the stage is known (in the outbox kind `reminder_<name>`, the marts and the
  label keys of its wording);
- `days_past_due`: the first day past the due date it applies (at least 1: an invoice due
  today is not overdue);
- `audience`: `customer` (the billing contact) or `account_owner` (the CRM owner, who takes
  the case over instead of the customer getting another letter);
- `templates`: the approved `html` and `text` email templates it renders;
- `channels`: `customer` (the customer's delivery channel policy, without EDI) or a list in
  failover order, of `email` and `portal`;
- `language`: for the account owner, the language of the hand-over (default `en`);
- `attach_statement`: whether the statement of open items goes with it (default yes).

dbt reads the stages from the seed `dunning_stages.csv`, written from the policy with
`q2c collections policy --write-seed`; `check_seed()` tells a stale seed apart.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from q2c.content.registry import ContentError, ContentRegistry
from q2c.delivery.envelope import EMAIL, PORTAL
from q2c.settings import PROJECT_ROOT

DEFAULT_POLICY_FILE = PROJECT_ROOT / "content" / "dunning" / "policy.yaml"
SEED_FILE = PROJECT_ROOT / "dbt_project" / "seeds" / "dunning_stages.csv"
SEED_COLUMNS = ("stage_order", "stage_name", "days_past_due", "audience")

CUSTOMER = "customer"
ACCOUNT_OWNER = "account_owner"
AUDIENCES = (CUSTOMER, ACCOUNT_OWNER)
# Channels a reminder can go by: EDI carries e-invoices, not letters.
REMINDER_CHANNELS = (EMAIL, PORTAL)
FOLLOW_CUSTOMER = "customer"

_POLICY_FIELDS = ("version", "approved_by", "approved_at", "effective_from",
                  "pay_within_days", "stages")
_STAGE_FIELDS = ("name", "days_past_due", "audience", "templates", "channels", "language",
                 "attach_statement")
_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")
# Label keys each stage's wording needs in `dunning_labels` (English, the last fallback).
CUSTOMER_LABELS = ("dunning_title_{stage}", "dunning_subject_{stage}", "dunning_intro_{stage}")
OWNER_LABELS = ("dunning_handoff_subject", "dunning_handoff_intro")


class PolicyError(ValueError):
    """The dunning policy cannot be used; the message names the file, the stage and the fix."""


@dataclass(frozen=True)
class Stage:
    """One dunning stage of the policy (fields in the module docstring)."""

    name: str
    order: int
    days_past_due: int
    audience: str
    html_template: str
    text_template: str
    channels: tuple[str, ...] | None
    language: str | None = None
    attach_statement: bool = True

    @property
    def kind(self) -> str:
        """The outbox document kind: one reminder per invoice and stage, ever."""
        return f"reminder_{self.name}"

    @property
    def follows_customer_policy(self) -> bool:
        return self.channels is None


@dataclass(frozen=True)
class DunningPolicy:
    """The stages in order of days past due, and the version that decided them."""

    version: int
    approved_by: str
    approved_at: dt.datetime
    effective_from: dt.date
    pay_within_days: int
    stages: tuple[Stage, ...]
    source: str
    sha256: str

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise PolicyError(
            f"{self.source} (v{self.version}) has no stage {name!r}; its stages are "
            f"{', '.join(s.name for s in self.stages)}. Rebuild the marts after a policy "
            "change (the seed names the stages dbt used)"
        )

    def record(self) -> dict[str, object]:
        """The policy version as the outbox decision of each reminder keeps it."""
        return {"source": self.source, "version": self.version, "sha256": self.sha256,
                "approved_by": self.approved_by}

    def seed_rows(self) -> list[dict[str, object]]:
        return [{"stage_order": s.order, "stage_name": s.name,
                 "days_past_due": s.days_past_due, "audience": s.audience}
                for s in self.stages]

    def seed_csv(self) -> str:
        """The stages as dbt's seed `dunning_stages.csv` holds them."""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=SEED_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.seed_rows())
        return out.getvalue()

    def check_in_effect(self, on: dt.date) -> None:
        if on < self.effective_from:
            raise PolicyError(
                f"{self.source} (v{self.version}) is in effect from {self.effective_from}, "
                f"not on {on}; set effective_from to the first day it applies"
            )


def load_policy(path: Path | str | None = None) -> DunningPolicy:
    """Read the dunning policy file; None reads `content/dunning/policy.yaml`.

    Raises:
        PolicyError: The file is missing, not YAML, or a field or stage is wrong.
    """
    path = Path(path or DEFAULT_POLICY_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            f"cannot read the dunning policy {path} ({exc.strerror or exc}): check "
            "Q2C_DUNNING_POLICY (dunning_policy in q2c.yaml)"
        ) from exc
    shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
    return parse_policy(text, str(shown))


def parse_policy(text: str, source: str = "<dunning policy>") -> DunningPolicy:
    """Build the policy from YAML text; `source` names it in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{source} must be a mapping with version, approval and stages")
    unknown = sorted(set(map(str, data)) - set(_POLICY_FIELDS))
    if unknown:
        raise PolicyError(f"{source} has unknown field(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(_POLICY_FIELDS)}")
    missing = [name for name in _POLICY_FIELDS[:4] if data.get(name) in (None, "")]
    if missing:
        raise PolicyError(f"{source} lacks {', '.join(missing)}: a policy in force records "
                          "its version, who approved it, when, and from which day it applies")

    stages_data = data.get("stages")
    if not isinstance(stages_data, list) or not stages_data:
        raise PolicyError(f"{source} has no stages: list at least one under `stages`")
    stages = tuple(_stage(item, order, source)
                   for order, item in enumerate(stages_data, start=1))
    _check_order(stages, source)

    return DunningPolicy(
        version=_positive_int(data["version"], f"{source}: version", minimum=1),
        approved_by=str(data["approved_by"]).strip(),
        approved_at=_datetime(data["approved_at"], f"{source}: approved_at"),
        effective_from=_date(data["effective_from"], f"{source}: effective_from"),
        pay_within_days=_positive_int(data.get("pay_within_days", 7),
                                      f"{source}: pay_within_days", minimum=0),
        stages=stages,
        source=source,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def check_content(policy: DunningPolicy, content: ContentRegistry, on: dt.date) -> None:
    """Check that every stage's templates are approved and in force, with their wording.

    Raises:
        PolicyError: A template is not approved on `on`, or the English labels lack a key
            a stage needs (`dunning_subject_<stage>`, ...).
    """
    for stage in policy.stages:
        where = f"{policy.source}, stage {stage.name}"
        labels: dict[str, str] = {}
        for template_id in (stage.html_template, stage.text_template):
            try:
                template = content.get(template_id, on=on)
                for texts_id in template.texts:
                    labels.update(content.labels("en", texts_id, on=on)[0])
            except ContentError as exc:
                raise PolicyError(f"{where}: template {template_id}: {exc}") from exc
        wanted = CUSTOMER_LABELS if stage.audience == CUSTOMER else OWNER_LABELS
        lacking = [key.format(stage=stage.name) for key in wanted
                   if key.format(stage=stage.name) not in labels]
        if lacking:
            raise PolicyError(
                f"{where}: the English labels of {stage.html_template} lack "
                f"{', '.join(lacking)}; add them in a new version of dunning_labels"
            )


def check_seed(policy: DunningPolicy, rows: list[dict[str, object]]) -> list[str]:
    """How the stages dbt used (the seed's rows) differ from the policy; empty when equal."""
    wanted = [tuple(str(row[c]) for c in SEED_COLUMNS) for row in policy.seed_rows()]
    found = sorted((tuple(str(row.get(c)) for c in SEED_COLUMNS) for row in rows),
                   key=lambda row: int(row[0]) if row[0].isdigit() else 0)
    if found == wanted:
        return []
    return [f"the seed has {', '.join('/'.join(r[1:3]) for r in found) or 'no stages'}, "
            f"the policy {policy.source} v{policy.version} has "
            f"{', '.join('/'.join(r[1:3]) for r in wanted)}: run `q2c collections policy "
            "--write-seed` and rebuild the marts"]


def _stage(item: object, order: int, source: str) -> Stage:
    if not isinstance(item, dict):
        raise PolicyError(f"{source}: stage {order} is not a mapping with name and "
                          "days_past_due")
    name = str(item.get("name") or "")
    where = f"{source}: stage {order} ({name or 'no name'})"
    if not _SLUG.match(name):
        raise PolicyError(f"{where}: `name` must be a short lower-case name such as "
                          "second_notice")
    unknown = sorted(set(map(str, item)) - set(_STAGE_FIELDS))
    if unknown:
        raise PolicyError(f"{where} has unknown field(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(_STAGE_FIELDS)}")
    audience = str(item.get("audience") or CUSTOMER)
    if audience not in AUDIENCES:
        raise PolicyError(f"{where}: audience {audience!r} is not one of "
                          f"{', '.join(AUDIENCES)}")
    html, text = _templates(item.get("templates"), where)
    channels = _channels(item.get("channels", FOLLOW_CUSTOMER), audience, where)
    language = item.get("language")
    if language is not None and (audience != ACCOUNT_OWNER or not _LANGUAGE.match(str(language))):
        raise PolicyError(f"{where}: `language` is for the account owner's hand-over only, "
                          "as a tag such as en or de (a customer reads their own language)")
    attach = item.get("attach_statement", True)
    if not isinstance(attach, bool):
        raise PolicyError(f"{where}: attach_statement must be true or false")
    return Stage(
        name=name, order=order,
        days_past_due=_positive_int(item.get("days_past_due"), f"{where}: days_past_due",
                                    minimum=1),
        audience=audience, html_template=html, text_template=text, channels=channels,
        language=str(language) if language else ("en" if audience == ACCOUNT_OWNER else None),
        attach_statement=attach,
    )


def _templates(value: object, where: str) -> tuple[str, str]:
    if not isinstance(value, dict) or set(value) != {"html", "text"}:
        raise PolicyError(f"{where}: `templates` must name the html and text email templates, "
                          "e.g. {html: dunning_email_html, text: dunning_email_text}")
    names = (str(value["html"] or ""), str(value["text"] or ""))
    if not all(_SLUG.match(name) for name in names):
        raise PolicyError(f"{where}: templates {names} are not content ids")
    return names


def _channels(value: object, audience: str, where: str) -> tuple[str, ...] | None:
    if value == FOLLOW_CUSTOMER:
        if audience == ACCOUNT_OWNER:
            raise PolicyError(f"{where}: the account owner is reached by [email], not by the "
                              "customer's channel policy")
        return None
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{where}: channels must be `customer` or a list such as "
                          "[email, portal]")
    channels = tuple(str(channel).strip().lower() for channel in value)
    wrong = [channel for channel in channels if channel not in REMINDER_CHANNELS]
    if wrong:
        raise PolicyError(f"{where}: channel(s) {', '.join(wrong)} cannot carry a reminder; "
                          f"use {' and '.join(REMINDER_CHANNELS)} (EDI carries e-invoices)")
    if len(set(channels)) != len(channels):
        raise PolicyError(f"{where} lists a channel twice: each channel once, in order")
    if audience == ACCOUNT_OWNER and channels != (EMAIL,):
        raise PolicyError(f"{where}: the account owner is reached by [email] only")
    return channels


def _check_order(stages: tuple[Stage, ...], source: str) -> None:
    names = [stage.name for stage in stages]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise PolicyError(f"{source}: two stages are named {duplicate!r}; names are unique")
    for before, after in zip(stages, stages[1:], strict=False):
        if after.days_past_due <= before.days_past_due:
            raise PolicyError(
                f"{source}: stage {after.name} ({after.days_past_due} days) must come later "
                f"than {before.name} ({before.days_past_due} days): list stages by days "
                "past due, each later than the one before"
            )


def _positive_int(value: object, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyError(f"{where} is {value!r}; give a whole number of at least {minimum}")
    return value


def _date(value: object, where: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise PolicyError(f"{where} is {value!r}; write a day as YYYY-MM-DD") from exc


def _datetime(value: object, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise PolicyError(f"{where} is {value!r}; write a time as "
                              "2026-12-05T09:00:00+00:00") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
