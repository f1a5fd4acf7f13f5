"""The channel policy: rules as data, consent and master data removing channels."""

from __future__ import annotations

from pathlib import Path

import pytest

from q2c.delivery.policy import (
    AccountDelivery,
    ChannelDecision,
    PolicyError,
    load_policy,
    resolve_channels,
)

DEFAULT = load_policy(None)
EMAIL = "ap@customer.example"
PEPPOL = "0088:5790000435951"


def account(*, preference: str | None = None, segment: str | None = "mid_market",
            country: str | None = "DE", email: str | None = EMAIL, consent: bool = True,
            peppol: str | None = None) -> AccountDelivery:
    return AccountDelivery(
        account_key="acc_1", segment=segment, country=country, preference=preference,
        email=email, email_consent=consent, peppol_id=peppol,
    )


def test_edi_then_email_then_portal():
    decision = resolve_channels(account(preference="edi", peppol=PEPPOL), DEFAULT)
    assert decision == ChannelDecision(
        channels=("edi", "email", "portal"), skipped=(), rule="edi-preferred",
        preference="edi")
    assert decision.describe() == "rule edi-preferred (preference edi): edi, email, portal"


def test_email_consent_off_removes_email_only():
    decision = resolve_channels(account(preference="Email", consent=False), DEFAULT)
    assert decision.rule == "email-preferred"
    assert decision.channels == ("portal",)
    assert decision.skipped == (("email", "the billing contact opted out of email"),)


def test_missing_peppol_id_removes_edi():
    decision = resolve_channels(account(preference="edi"), DEFAULT)
    assert decision.channels == ("email", "portal")
    assert decision.skipped == (("edi", "no Peppol participant id on the account"),)


def test_malformed_peppol_id_removes_edi_and_says_why():
    decision = resolve_channels(account(preference="edi", peppol="DE811907980"), DEFAULT)
    assert decision.channels == ("email", "portal")
    [(channel, reason)] = decision.skipped
    assert channel == "edi" and "'DE811907980' is not '<scheme>:<id>'" in reason


def test_no_channel_left_is_a_decision_with_every_reason():
    decision = resolve_channels(
        account(preference="edi", email="ebe31c0498dd42addc9e5fddd2fdabb8"), DEFAULT)
    assert decision.channels == ()
    assert decision.rule == "edi-preferred"
    assert [channel for channel, _ in decision.skipped] == ["edi", "email", "portal"]
    reasons = dict(decision.skipped)
    assert reasons["edi"] == "no Peppol participant id on the account"
    assert reasons["email"].startswith("no valid billing email (recipient is a 32-character")
    assert reasons["portal"] == "the portal notice needs a valid billing email"
    assert decision.describe().startswith("rule edi-preferred (preference edi): no channel;")
    record = decision.as_record()
    assert record["channels"] == [] and record["rule"] == "edi-preferred"
    assert record["skipped"] == reasons


@pytest.mark.parametrize(
    ("preference", "rule", "channels"),
    [
        ("Email", "email-preferred", ("email", "portal")),
        ("Print", "print-requested", ("email", "portal")),
        ("None", "no-delivery-requested", ()),
        ("portal", "portal-preferred", ("portal", "email")),
        (None, "default", ("email", "portal")),
        ("Fax", "default", ("email", "portal")),
    ],
)
def test_quickbooks_and_q2c_preferences(preference, rule, channels):
    decision = resolve_channels(account(preference=preference, peppol=PEPPOL), DEFAULT)
    assert (decision.rule, decision.channels, decision.skipped) == (rule, channels, ())


def test_country_and_segment_rules_of_the_default_policy():
    belgian = resolve_channels(account(preference="email", country="be", peppol=PEPPOL),
                               DEFAULT)
    assert (belgian.rule, belgian.channels) == ("belgium-peppol-mandate",
                                                ("edi", "email", "portal"))
    enterprise = resolve_channels(account(segment="Enterprise"), DEFAULT)
    assert enterprise.rule == "enterprise-edi-first"
    assert enterprise.channels == ("email", "portal")
    assert enterprise.skipped == (("edi", "no Peppol participant id on the account"),)


def test_a_custom_policy_per_segment_and_country(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(
        "rules:\n"
        "  - name: dach-enterprise\n"
        "    match: {segment: enterprise, country: [DE, AT, CH]}\n"
        "    channels: [edi, portal, email]\n"
        "  - name: norway\n"
        "    match: {country: 'NO'}\n"
        "    channels: [edi, email]\n"
        "  - name: everyone-else\n"
        "    channels: [email]\n"
    )
    policy = load_policy(path)
    assert policy.source == str(path)
    at = resolve_channels(account(segment="enterprise", country="AT", peppol=PEPPOL), policy)
    assert (at.rule, at.channels) == ("dach-enterprise", ("edi", "portal", "email"))
    smb = resolve_channels(account(segment="smb", country="AT", peppol=PEPPOL), policy)
    assert (smb.rule, smb.channels) == ("everyone-else", ("email",))
    norway = resolve_channels(account(country="NO", consent=False), policy)
    assert norway.channels == ()
    assert norway.skipped == (("edi", "no Peppol participant id on the account"),
                              ("email", "the billing contact opted out of email"))


RULES_TAIL = "  - name: default\n    channels: [email]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules:\n  - name: fax-first\n    channels: [fax, email]\n" + RULES_TAIL,
         "rule 1 (fax-first) names unknown channel(s) fax; use edi, email, portal"),
        ("rules:\n  - name: edi\n    match: {preference: edi}\n" + RULES_TAIL,
         "rule 1 (edi) has no channels"),
        ("rules:\n  - channels: [email]\n", "rule 1 has no name"),
        ("rules:\n  - name: typo\n    chanels: [email]\n" + RULES_TAIL,
         "rule 1 (typo) has unknown field(s) chanels"),
        ("rules:\n  - name: by-region\n    match: {region: EU}\n    channels: [email]\n"
         + RULES_TAIL, "rule 1 (by-region) matches on unknown field(s) region"),
        ("rules:\n  - name: pigeon\n    match: {preference: pigeon}\n    channels: [email]\n"
         + RULES_TAIL, "rule 1 (pigeon) matches unknown preference(s) pigeon"),
        ("rules:\n  - name: norway\n    match: {country: [NO]}\n    channels: [edi]\n"
         + RULES_TAIL, "rule 1 (norway): match.country holds a yes/no value"),
        ("rules:\n  - name: only\n    match: {segment: smb}\n    channels: [email]\n",
         "the last rule (only) has a 'match'"),
        ("rules:\n  - name: twice\n    channels: [email, email]\n",
         "rule 1 (twice) lists a channel twice"),
        ("rules:\n" + RULES_TAIL + RULES_TAIL, "two rules are named 'default'"),
        ("rules: []\n", "has no rules"),
        ("channels: [email]\n", "must be a mapping with a list under 'rules'"),
        ("rules: [\n", "is not valid YAML"),
    ],
)
def test_bad_policy_files_name_the_file_and_the_rule(tmp_path: Path, text, expected):
    path = tmp_path / "bad-policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(str(path))
    assert expected in str(caught.value)


def test_a_missing_policy_file_names_the_setting(tmp_path: Path):
    with pytest.raises(PolicyError, match="Q2C_DELIVERY_POLICY"):
        load_policy(tmp_path / "nope.yaml")


def test_the_packaged_default_ends_with_a_catch_all():
    assert DEFAULT.source == "q2c/delivery/default_policy.yaml"
    assert DEFAULT.rules[-1].name == "default" and DEFAULT.rules[-1].is_catch_all


def test_account_from_a_dim_accounts_row():
    row = {
        "account_key": "acc_9", "segment": "enterprise", "country_code": "FR",
        "invoice_delivery_channel": None, "delivery_preference": "print",
        "billing_email": EMAIL, "email_consent": None,
        "peppol_participant_id": "9957:FR12345678901",
    }
    assert AccountDelivery.from_row(row) == AccountDelivery(
        account_key="acc_9", segment="enterprise", country="FR", preference="print",
        email=EMAIL, email_consent=True, peppol_id="9957:FR12345678901")
    crm_wins = AccountDelivery.from_row({**row, "invoice_delivery_channel": "edi",
                                         "email_consent": False})
    assert (crm_wins.preference, crm_wins.email_consent) == ("edi", False)
