"""The channel policy: which channels, in which order, each customer's invoices go through.

The policy is data (`default_policy.yaml`, or the file in Q2C_DELIVERY_POLICY): rules
matched top to bottom on the account's segment, country and delivery preference, each
giving an ordered channel list; the first channel is tried first and the others are the
failover. The last rule must match every account, so no account is left without a rule.

The account's own data then removes the channels it cannot use: email when the billing
contact opted out of email or has no valid address, the portal when there is no valid
address for its notice, EDI when there is no Peppol participant id. Every decision names
the rule that matched and why each channel was left out, for the delivery audit trail.

A customer's own change, made in the customer portal and confirmed there (a billing address
confirmed from that address, a delivery preference with the customer's consent), is kept in
the operational store (`delivery_overrides`) and wins over the CRM and the ERP: a policy
loaded with the store (`load_policy(..., ops_store=...)`) applies it before the rules.

A rule may also say what happens when an EDI partner rejects a delivered document in its
functional acknowledgement (an X12 997): `on_edi_rejection: failover` (the default) sends
it again on the next channel of the plan, `alert` leaves it sent and raises it for a
person, for partners who want corrections agreed with them first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from q2c.delivery.addresses import validate_recipient
from q2c.delivery.edi import participant_id
from q2c.delivery.envelope import CHANNELS, EDI, EMAIL, PORTAL
from q2c.delivery.errors import InvalidRecipientError
from q2c.delivery.overrides import DeliveryOverride, load_overrides

logger = logging.getLogger(__name__)

DEFAULT_POLICY = "default_policy.yaml"
UNSET = "unset"
# QuickBooks PreferredDeliveryMethod (email, print, none) and the CRM's q2c channel
# (edi, email, portal); `unset` when neither system records one.
PREFERENCES = (EDI, EMAIL, PORTAL, "print", "none", UNSET)
_MATCH_FIELDS = ("segment", "country", "preference")
_RULE_FIELDS = ("name", "description", "match", "channels", "on_edi_rejection")
# What a rejecting functional acknowledgement of an EDI send leads to.
FAILOVER = "failover"
ALERT = "alert"
EDI_REJECTION_ACTIONS = (FAILOVER, ALERT)


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file, the rule and the fix."""


@dataclass(frozen=True)
class AccountDelivery:
    """What the policy needs to know about one account (a row of dim_accounts).

    Attributes:
        account_key: The account's surrogate key, for logs and the audit trail.
        segment: The CRM segment (smb, mid_market, enterprise), or None.
        country: ISO 3166-1 alpha-2 country code, or None.
        preference: The delivery preference: a q2c channel (edi, email, portal) or a
            QuickBooks method (Email, Print, None); case does not matter.
        email: The billing email address.
        email_consent: False when the billing contact opted out of email.
        peppol_id: The buyer's Peppol participant id, `<scheme>:<id>`.
        einvoice_format: peppol_ubl, facturx or x12_810 (None: peppol_ubl).
        x12_partner: The trading-partner profile of an x12_810 customer.
    """

    account_key: str
    segment: str | None
    country: str | None
    preference: str | None
    email: str | None
    email_consent: bool
    peppol_id: str | None
    einvoice_format: str | None = None
    x12_partner: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AccountDelivery:
        """Build from a dim_accounts row: the CRM channel wins over the ERP method."""
        consent = row.get("email_consent")
        return cls(
            account_key=str(row["account_key"]),
            segment=row.get("segment"),
            country=row.get("country_code"),
            preference=row.get("invoice_delivery_channel") or row.get("delivery_preference"),
            email=row.get("billing_email"),
            email_consent=True if consent is None else bool(consent),
            peppol_id=row.get("peppol_participant_id"),
            einvoice_format=row.get("einvoice_format"),
            x12_partner=row.get("x12_partner"),
        )


@dataclass(frozen=True)
class ChannelDecision:
    """The channels to try for an account, in order, and the ones left out with why.

    `rule` is the name of the policy rule that matched; `preference` the preference as
    the policy read it.
    """

    channels: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    rule: str
    preference: str = UNSET
    override: str | None = None

    def as_record(self) -> dict[str, object]:
        """The decision as the outbox stores it (`OutboxItem.decision`), JSON-ready."""
        record: dict[str, object] = {
            "rule": self.rule, "preference": self.preference,
            "channels": list(self.channels), "skipped": dict(self.skipped),
            "summary": self.describe()}
        if self.override:
            record["override"] = self.override
        return record

    def describe(self) -> str:
        """One line for logs and the audit trail."""
        chosen = ", ".join(self.channels) or "no channel"
        text = f"rule {self.rule} (preference {self.preference}): {chosen}"
        if self.skipped:
            text += "; skipped " + "; ".join(f"{ch}: {why}" for ch, why in self.skipped)
        if self.override:
            text += f"; {self.override}"
        return text


@dataclass(frozen=True)
class PolicyRule:
    """One rule: the values it matches (None matches anything) and its channel order."""

    name: str
    channels: tuple[str, ...]
    segments: frozenset[str] | None = None
    countries: frozenset[str] | None = None
    preferences: frozenset[str] | None = None
    description: str = ""
    on_edi_rejection: str = FAILOVER

    def matches(self, segment: str, country: str, preference: str) -> bool:
        return all(allowed is None or value in allowed for allowed, value in (
            (self.segments, segment), (self.countries, country),
            (self.preferences, preference)))

    @property
    def is_catch_all(self) -> bool:
        return self.segments is None and self.countries is None and self.preferences is None


@dataclass(frozen=True)
class ChannelPolicy:
    """The rules in order, and the file they came from."""

    rules: tuple[PolicyRule, ...]
    source: str
    overrides: Mapping[str, DeliveryOverride] = field(default_factory=dict)

    def account_for(self, account: AccountDelivery) -> AccountDelivery:
        """The account with the customer's confirmed portal changes applied, if any."""
        override = self.overrides.get(account.account_key)
        return override.apply(account) if override is not None else account

    def edi_rejection_action(self, rule_name: str | None) -> str:
        """`failover` or `alert` for documents routed by rule `rule_name`; `failover` when
        no rule of this policy has that name (the policy changed since they were queued)."""
        rule = next((rule for rule in self.rules if rule.name == rule_name), None)
        return rule.on_edi_rejection if rule is not None else FAILOVER


def load_policy(path: Path | str | None = None,
                ops_store: Path | None = None) -> ChannelPolicy:
    """Read a policy file; None reads the packaged default. With `ops_store`, the
    customers' confirmed portal changes in it apply too.

    Raises:
        PolicyError: The file is missing, not YAML, or a rule is wrong; the message names
            the file and the rule.
    """
    policy = _read_policy(path)
    if ops_store is not None:
        policy = replace(policy, overrides=load_overrides(ops_store))
    return policy


def _read_policy(path: Path | str | None) -> ChannelPolicy:
    if path is None:
        resource = resources.files("q2c.delivery").joinpath(DEFAULT_POLICY)
        return parse_policy(resource.read_text(encoding="utf-8"), f"q2c/delivery/{DEFAULT_POLICY}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            f"cannot read delivery policy {path} ({exc.strerror or exc}): check "
            "Q2C_DELIVERY_POLICY"
        ) from exc
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str = "<policy>") -> ChannelPolicy:
    """Build a policy from YAML text; `source` names it in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise PolicyError(f"{source} must be a mapping with a list under 'rules'")
    if not data["rules"]:
        raise PolicyError(f"{source} has no rules: add at least one rule without 'match'")
    rules = tuple(_rule(item, number, source)
                  for number, item in enumerate(data["rules"], start=1))
    names = [rule.name for rule in rules]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise PolicyError(f"{source}: two rules are named {duplicate!r}; names must be unique")
    if not rules[-1].is_catch_all:
        raise PolicyError(
            f"{source}: the last rule ({rules[-1].name}) has a 'match', so some accounts "
            "would match no rule: end with a rule without 'match'"
        )
    return ChannelPolicy(rules=rules, source=source)


def normalize_preference(value: str | None) -> str:
    """`Email`, ` EDI ` and `None` become `email`, `edi` and `none`; blank becomes `unset`."""
    text = (value or "").strip().lower()
    if not text:
        return UNSET
    return text if text in PREFERENCES else UNSET


def resolve_channels(account: AccountDelivery, policy: ChannelPolicy) -> ChannelDecision:
    """Pick the account's rule and drop the channels the account cannot receive."""
    override = policy.overrides.get(account.account_key)
    if override is not None:
        account = override.apply(account)
    preference = normalize_preference(account.preference)
    if account.preference and preference == UNSET:
        logger.warning("account %s has delivery preference %r, which the policy does not "
                       "know; treated as unset", account.account_key, account.preference)
    segment = (account.segment or "").strip().lower()
    country = (account.country or "").strip().upper()
    rule = next(rule for rule in policy.rules if rule.matches(segment, country, preference))

    unusable = _unusable_channels(account)
    channels = tuple(ch for ch in rule.channels if ch not in unusable)
    skipped = tuple((ch, unusable[ch]) for ch in rule.channels if ch in unusable)
    return ChannelDecision(
        channels=channels, skipped=skipped, rule=rule.name, preference=preference,
        override=(f"the customer's portal change of {override.changed_at}"
                  if override is not None else None))


def _unusable_channels(account: AccountDelivery) -> dict[str, str]:
    reasons: dict[str, str] = {}
    try:
        validate_recipient(account.email)
    except InvalidRecipientError as exc:
        reasons[EMAIL] = f"no valid billing email ({exc})"
        reasons[PORTAL] = "the portal notice needs a valid billing email"
    if EMAIL not in reasons and not account.email_consent:
        reasons[EMAIL] = "the billing contact opted out of email"
    if (account.einvoice_format or "").strip().lower() == "x12_810":
        if not (account.x12_partner or "").strip():
            reasons[EDI] = "x12_810 customer without a trading-partner profile (x12_partner)"
    elif not (account.peppol_id or "").strip():
        reasons[EDI] = "no Peppol participant id on the account"
    elif participant_id(account.peppol_id) is None:
        reasons[EDI] = (f"Peppol participant id {account.peppol_id!r} is not "
                        "'<scheme>:<id>' (e.g. 0088:5790000435951)")
    return reasons


def _rule(item: object, number: int, source: str) -> PolicyRule:
    if not isinstance(item, dict):
        raise PolicyError(f"{source}: rule {number} is not a mapping with name and channels")
    name = item.get("name")
    where = f"{source}: rule {number} ({name})" if name else f"{source}: rule {number}"
    if not isinstance(name, str) or not name.strip():
        raise PolicyError(f"{where} has no name: give every rule a unique name")
    unknown = sorted(set(item) - set(_RULE_FIELDS))
    if unknown:
        raise PolicyError(f"{where} has unknown field(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(_RULE_FIELDS)}")
    if "channels" not in item:
        raise PolicyError(f"{where} has no channels: list them in order, e.g. [email, portal]")
    channels = _channels(item["channels"], where)
    match = item.get("match") or {}
    if not isinstance(match, dict):
        raise PolicyError(f"{where}: 'match' must be a mapping of segment, country, preference")
    unknown = sorted(set(match) - set(_MATCH_FIELDS))
    if unknown:
        raise PolicyError(f"{where} matches on unknown field(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(_MATCH_FIELDS)}")
    preferences = _values(match, "preference", where, str.lower)
    bad = sorted((preferences or set()) - set(PREFERENCES))
    if bad:
        raise PolicyError(f"{where} matches unknown preference(s) {', '.join(bad)}; "
                          f"use {', '.join(PREFERENCES)}")
    on_rejection = item.get("on_edi_rejection", FAILOVER)
    if on_rejection not in EDI_REJECTION_ACTIONS:
        raise PolicyError(f"{where}: on_edi_rejection is {on_rejection!r}; use "
                          f"{' or '.join(EDI_REJECTION_ACTIONS)}")
    return PolicyRule(
        name=name.strip(),
        channels=channels,
        segments=_values(match, "segment", where, str.lower),
        countries=_values(match, "country", where, str.upper),
        preferences=preferences,
        description=str(item.get("description") or ""),
        on_edi_rejection=on_rejection,
    )


def _channels(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PolicyError(f"{where}: channels must be a list, e.g. [edi, email, portal]")
    channels = tuple(str(ch).strip().lower() for ch in value)
    unknown = [ch for ch in channels if ch not in CHANNELS]
    if unknown:
        raise PolicyError(f"{where} names unknown channel(s) {', '.join(unknown)}; "
                          f"use {', '.join(CHANNELS)}")
    if len(set(channels)) != len(channels):
        raise PolicyError(f"{where} lists a channel twice: each channel once, in order")
    return channels


def _values(match: dict, field: str, where: str, case: Any) -> frozenset[str] | None:
    if field not in match:
        return None
    value = match[field]
    values = value if isinstance(value, list) else [value]
    if any(isinstance(v, bool) for v in values):
        raise PolicyError(f"{where}: match.{field} holds a yes/no value; quote codes that "
                          "YAML reads as booleans, e.g. country: ['NO']")
    if not values or any(not isinstance(v, str) or not v.strip() for v in values):
        raise PolicyError(f"{where}: match.{field} must be a value or a list of values")
    return frozenset(case(v.strip()) for v in values)
