"""The billing address and the delivery preference a customer changes in the portal.

A new billing address counts only once it is confirmed from that address: the change is
kept pending with a confirmation token (256 random bits, stored only as its SHA-256 hash,
valid 24 hours, single use) whose link is mailed to the new address; a newer request of the
account supersedes an older one. The link opens a page that confirms with a POST (mail
scanners follow GET links). Only then is the address written to the delivery overrides
(`q2c.delivery.overrides`), which the channel policy applies before the CRM's and the
ERP's address, and the address it replaces is told. Sign-in follows it
(`billing_address_contacts`, registered with `q2c.portal.signin`): the confirmed address
signs in to the account, and the addresses it replaced no longer do.

A delivery preference (email or portal) takes effect at once, as the signed-in customer
chose it. Both changes need the customer's consent to the governed wording
(`portal_contact_messages`, in the customer's language): who agreed, when, to which
wording of which version, from where, is recorded in `portal_consents`. Every step is a
portal event in the same transaction as the change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
import secrets
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

from q2c.content.registry import ContentRegistry
from q2c.delivery.addresses import mask_address, validate_recipient
from q2c.delivery.envelope import EMAIL, Envelope
from q2c.delivery.errors import InvalidRecipientError
from q2c.delivery.mail_transport import email_payload
from q2c.delivery.message import IDEMPOTENCY_HEADER, message_id_for
from q2c.delivery.overrides import (
    OVERRIDES_DDL,
    OVERRIDES_TABLE,
    DeliveryOverride,
    load_overrides,
)
from q2c.opsdb import connect, ensure_schema, transaction
from q2c.portal import signin
from q2c.portal.dispute_replies import fill
from q2c.portal.events import (
    CONSENT_RECORDED,
    CONTACT_CHANGE_CONFIRMED,
    CONTACT_CHANGE_REQUESTED,
    PREFERENCE_CHANGED,
    ensure_events,
    record_event,
)

logger = logging.getLogger(__name__)

CHANGES_TABLE = "portal_contact_changes"
CONSENTS_TABLE = "portal_consents"
TEXTS_ID = "portal_contact_messages"
CONFIRMATION_LIFETIME = dt.timedelta(hours=24)
# Address change requests an account may make in a day (each sends a mail).
REQUESTS_PER_DAY = 5
EMAIL_DELIVERY = "email"
PORTAL_DELIVERY = "portal"
PREFERENCES = (EMAIL_DELIVERY, PORTAL_DELIVERY)
# The consent each choice needs: purpose -> the key of its wording in the texts.
CONSENT_KEYS = {EMAIL_DELIVERY: "consent_email_delivery",
                PORTAL_DELIVERY: "consent_portal_delivery"}
CONFIRM_PATH = "/account/confirm/"

CONTACTS_DDL = f"""
create table if not exists {CHANGES_TABLE} (
    change_id text primary key,
    account_key text not null,
    new_email text not null,
    previous_email text,
    customer_name text not null,
    token_hash text not null unique,
    language text not null,
    requested_by text not null,
    requested_at text not null,
    expires_at text not null,
    confirmed_at text,
    confirmed_client text,
    superseded_at text
);
create index if not exists portal_contact_changes_account
    on {CHANGES_TABLE} (account_key, requested_at);
create table if not exists {CONSENTS_TABLE} (
    consent_id text primary key,
    account_key text not null,
    purpose text not null,
    given_by text not null,
    given_at text not null,
    texts text not null,
    text_key text not null,
    language text not null,
    wording text not null,
    wording_sha256 text not null,
    client text
);
"""


class ContactError(ValueError):
    """A change cannot be made; the message says what to do instead.

    `key` names the portal text that says it to the customer.
    """

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class ConsentText:
    """The wording a customer agrees to, and which governed version it is."""

    purpose: str
    texts: str
    text_key: str
    language: str
    wording: str


@dataclass(frozen=True)
class AddressChange:
    """A billing address change, pending until confirmed from the new address."""

    change_id: str
    account_key: str
    new_email: str
    previous_email: str | None
    customer_name: str
    language: str
    requested_by: str
    requested_at: dt.datetime
    expires_at: dt.datetime
    confirmed_at: dt.datetime | None


class ContactBook:
    """The customers' contact changes and consents in the operational store.

    Args:
        store_path: The SQLite file (`Settings.ops_store`); tables are created if missing.
        content: The content registry; consent wording and mails use approved texts only.
        seller_name: Who the customer deals with, in the wording.
        clock: Returns the current time (timezone-aware); tests pin it.
    """

    def __init__(self, store_path: Path, content: ContentRegistry, *, seller_name: str,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store_path = Path(store_path)
        self.content = content
        self.seller_name = seller_name
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        ensure_store(self.store_path)

    def consent_text(self, purpose: str, language: str, customer_name: str) -> ConsentText:
        """The wording of the consent `purpose` needs, as the customer reads it."""
        if purpose not in CONSENT_KEYS:
            raise ContactError(f"choose how invoices reach you: {', '.join(PREFERENCES)}",
                               "account_error_preference")
        labels, entry = self.content.labels(language, TEXTS_ID, on=self._clock().date())
        key = CONSENT_KEYS[purpose]
        wording = fill(labels[key], {"seller": self.seller_name, "customer": customer_name})
        return ConsentText(purpose, entry.ref, key, language, wording)

    def override(self, account_key: str) -> DeliveryOverride | None:
        """The account's confirmed changes, as the delivery policy applies them."""
        return load_overrides(self.store_path).get(account_key)

    def billing_email(self, account_key: str, default: str | None) -> str | None:
        """The billing address in force: the confirmed portal change, else `default`."""
        override = self.override(account_key)
        return (override.billing_email if override and override.billing_email
                else default)

    # -- the billing address --

    def request_address_change(
        self, account_key: str, new_email: str, *, actor: str, language: str,
        customer_name: str, previous_email: str | None, consent: bool,
        client: str | None = None,
    ) -> tuple[AddressChange, str]:
        """Keep a new billing address pending; return it and its confirmation token.

        The token is returned once, for the confirmation mail; the store keeps its hash.

        Raises:
            ContactError: The address is not deliverable, is the address in force already,
                the customer did not agree to the wording, or the account asked too often.
        """
        try:
            address = validate_recipient(new_email)
        except InvalidRecipientError as exc:
            raise ContactError("this is not an email address we can deliver to: check it "
                               "for typing errors", "account_error_address") from exc
        if previous_email and previous_email.strip().lower() == address.lower():
            raise ContactError("this is the billing address already", "account_error_same")
        if not consent:
            raise ContactError("please agree to receiving invoices at this address",
                               "account_error_consent")
        wording = self.consent_text(EMAIL_DELIVERY, language, customer_name)
        now = self._clock()
        token = secrets.token_urlsafe(32)
        change_id = uuid.uuid4().hex
        with connect(self.store_path) as conn, transaction(conn):
            self._refuse_too_many(conn, account_key, now)
            conn.execute(
                f"update {CHANGES_TABLE} set superseded_at = ? where account_key = ?"
                " and confirmed_at is null and superseded_at is null",
                (_stamp(now), account_key))
            conn.execute(
                f"insert into {CHANGES_TABLE} (change_id, account_key, new_email,"
                " previous_email, customer_name, token_hash, language, requested_by,"
                " requested_at, expires_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (change_id, account_key, address, previous_email, customer_name,
                 token_hash(token), language, actor, _stamp(now),
                 _stamp(now + CONFIRMATION_LIFETIME)))
            record_event(conn, CONTACT_CHANGE_REQUESTED, actor=actor, account_key=account_key,
                         object_id=change_id, client=client, at=now,
                         detail={"domain": address.rpartition("@")[2]})
            self._record_consent(conn, account_key, wording, actor, client, now)
        logger.info("account %s: billing address change to %s requested by %s, waiting "
                    "for confirmation", account_key, mask_address(address), actor)
        return self._change(change_id), token

    def pending(self, token: str) -> AddressChange | None:
        """The change a confirmation token stands for, while it can still be confirmed."""
        with connect(self.store_path) as conn:
            row = conn.execute(
                f"select * from {CHANGES_TABLE} where token_hash = ? and confirmed_at is null"
                " and superseded_at is null and expires_at > ?",
                (token_hash(token), _stamp(self._clock()))).fetchone()
        return _change_of(row) if row is not None else None

    def pending_for(self, account_key: str) -> AddressChange | None:
        """The account's change waiting for confirmation, if any."""
        with connect(self.store_path) as conn:
            row = conn.execute(
                f"select * from {CHANGES_TABLE} where account_key = ? and confirmed_at is null"
                " and superseded_at is null and expires_at > ? order by requested_at desc"
                " limit 1", (account_key, _stamp(self._clock()))).fetchone()
        return _change_of(row) if row is not None else None

    def confirm(self, token: str, client: str | None = None) -> AddressChange:
        """Confirm a pending change from its link: the new address counts from now.

        Raises:
            ContactError: The link is unknown, used, expired or replaced by a newer one.
        """
        now = self._clock()
        with connect(self.store_path) as conn, transaction(conn):
            row = conn.execute(f"select * from {CHANGES_TABLE} where token_hash = ?",
                               (token_hash(token),)).fetchone()
            if row is None or row["confirmed_at"] or row["superseded_at"] or (
                    _moment(row["expires_at"]) <= now):
                raise ContactError("this confirmation link is no longer valid: ask for the "
                                   "change again in the portal", "account_confirm_invalid")
            conn.execute(f"update {CHANGES_TABLE} set confirmed_at = ?, confirmed_client = ?"
                         " where change_id = ?", (_stamp(now), client, row["change_id"]))
            _upsert_override(conn, row["account_key"], now, row["requested_by"],
                             billing_email=row["new_email"])
            record_event(conn, CONTACT_CHANGE_CONFIRMED, actor=row["requested_by"],
                         account_key=row["account_key"], object_id=row["change_id"],
                         client=client, at=now,
                         detail={"domain": row["new_email"].rpartition("@")[2]})
        logger.info("account %s: billing address change confirmed from the new address",
                    row["account_key"])
        return self._change(row["change_id"])

    # -- the delivery preference --

    def set_preference(self, account_key: str, preference: str, *, actor: str,
                       language: str, customer_name: str, consent: bool,
                       client: str | None = None) -> DeliveryOverride:
        """Deliver the account's invoices by `preference` from now on.

        Raises:
            ContactError: The preference is not offered, or the customer did not agree to
                the wording.
        """
        if preference not in PREFERENCES:
            raise ContactError(f"choose how invoices reach you: {', '.join(PREFERENCES)}",
                               "account_error_preference")
        if not consent:
            raise ContactError("please agree to receiving invoices this way",
                               "account_error_consent")
        wording = self.consent_text(preference, language, customer_name)
        now = self._clock()
        with connect(self.store_path) as conn, transaction(conn):
            _upsert_override(conn, account_key, now, actor, preference=preference,
                             email_consent=True if preference == EMAIL_DELIVERY else None)
            record_event(conn, PREFERENCE_CHANGED, actor=actor, account_key=account_key,
                         client=client, at=now, detail={"preference": preference})
            self._record_consent(conn, account_key, wording, actor, client, now)
        logger.info("account %s: delivery preference %s set by %s", account_key, preference,
                    actor)
        return load_overrides(self.store_path)[account_key]

    def consents(self, account_key: str) -> list[dict]:
        """The account's recorded consents, oldest first."""
        with connect(self.store_path) as conn:
            rows = conn.execute(f"select * from {CONSENTS_TABLE} where account_key = ?"
                                " order by given_at, consent_id", (account_key,)).fetchall()
        return [dict(row) for row in rows]

    # -- mails --

    def confirmation_mail(self, change: AddressChange, token: str, *, sender: str,
                          base_url: str) -> Envelope:
        """The confirmation mail to the new address, with the link of `token`."""
        link = f"{base_url.rstrip('/')}{CONFIRM_PATH}{token}"
        values = {"seller": self.seller_name, "customer": change.customer_name}
        labels, _ = self.content.labels(change.language, TEXTS_ID, on=self._clock().date())
        paragraphs = [labels["contact_greeting"],
                      fill(labels["contact_confirm_body"], values) + "\n" + link,
                      labels["contact_confirm_ignore"],
                      labels["contact_closing"] + "\n"
                      + fill(labels["contact_signature"], values)]
        return self._mail(f"portal-contact-{change.change_id}", change.new_email, sender,
                          fill(labels["contact_confirm_subject"], values), paragraphs)

    def changed_notice(self, change: AddressChange, *, sender: str) -> Envelope | None:
        """The notice to the address a confirmed change replaced; None without one."""
        try:
            previous = validate_recipient(change.previous_email)
        except InvalidRecipientError:
            return None
        values = {"seller": self.seller_name, "customer": change.customer_name,
                  "address": change.new_email}
        labels, _ = self.content.labels(change.language, TEXTS_ID, on=self._clock().date())
        paragraphs = [labels["contact_greeting"], fill(labels["contact_changed_body"], values),
                      labels["contact_closing"] + "\n"
                      + fill(labels["contact_signature"], values)]
        return self._mail(f"portal-contact-changed-{change.change_id}", previous, sender,
                          fill(labels["contact_changed_subject"], values), paragraphs)

    def _mail(self, key: str, recipient: str, sender: str, subject: str,
              paragraphs: list[str]) -> Envelope:
        domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        message = EmailMessage()
        message["From"] = sender
        message["To"] = recipient
        message["Subject"] = subject
        message["Date"] = format_datetime(self._clock())
        message["Message-ID"] = message_id_for(key, domain)
        message[IDEMPOTENCY_HEADER] = key
        message["Auto-Submitted"] = "auto-generated"
        message.set_content("\n\n".join(paragraphs) + "\n")
        message.add_alternative(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n"
            + "\n".join("<p>" + html.escape(p).replace("\n", "<br>\n") + "</p>"
                        for p in paragraphs) + "\n</body></html>\n", subtype="html")
        return Envelope(key=key, invoice_id="", invoice_number="portal contact",
                        document_id="", channel=EMAIL, recipient=recipient,
                        payload=email_payload(message), filename=f"{key}.eml",
                        content_type="message/rfc822")

    # -- helpers --

    def _refuse_too_many(self, conn: sqlite3.Connection, account_key: str,
                         now: dt.datetime) -> None:
        count = conn.execute(
            f"select count(*) from {CHANGES_TABLE} where account_key = ?"
            " and requested_at > ?",
            (account_key, _stamp(now - dt.timedelta(days=1)))).fetchone()[0]
        if count >= REQUESTS_PER_DAY:
            raise ContactError("you asked for this change several times today: use the "
                               "link of the last mail, or try again tomorrow",
                               "account_error_too_many")

    def _record_consent(self, conn: sqlite3.Connection, account_key: str,
                        wording: ConsentText, actor: str, client: str | None,
                        now: dt.datetime) -> None:
        consent_id = uuid.uuid4().hex
        conn.execute(
            f"insert into {CONSENTS_TABLE} (consent_id, account_key, purpose, given_by,"
            " given_at, texts, text_key, language, wording, wording_sha256, client)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (consent_id, account_key, wording.purpose, actor, _stamp(now), wording.texts,
             wording.text_key, wording.language, wording.wording,
             hashlib.sha256(wording.wording.encode()).hexdigest(), client))
        record_event(conn, CONSENT_RECORDED, actor=actor, account_key=account_key,
                     object_id=consent_id, client=client, at=now,
                     detail={"purpose": wording.purpose, "texts": wording.texts,
                             "language": wording.language})

    def _change(self, change_id: str) -> AddressChange:
        with connect(self.store_path) as conn:
            row = conn.execute(f"select * from {CHANGES_TABLE} where change_id = ?",
                               (change_id,)).fetchone()
        return _change_of(row)


def ensure_store(store_path: Path) -> None:
    """Create the contact tables, the delivery overrides and the events table if missing."""
    with connect(store_path) as conn:
        ensure_tables(conn)


def ensure_tables(conn: sqlite3.Connection) -> None:
    """Create the tables on an open store connection (the portal app does at startup)."""
    ensure_events(conn)
    ensure_schema(conn, CONTACTS_DDL)
    ensure_schema(conn, OVERRIDES_DDL)


def token_hash(token: str) -> str:
    """What the store keeps of a confirmation token."""
    return hashlib.sha256(f"q2c-portal-contact-v1\0{token}".encode()).hexdigest()


def billing_address_contacts(reader: Any, store_conn: sqlite3.Connection, address: str,
                             found: list[signin.Contact]) -> list[signin.Contact]:
    """Sign-in as the portal's confirmed billing addresses have it (a `signin` finder).

    `found` are the contacts the warehouse gave for `address` (lower-case). An account
    whose confirmed billing address is `address` is added (contact
    `portal-billing:<account>`). An account found whose confirmed address is another one
    loses `address` when a confirmed change replaced it: the warehouse's billing address,
    or an earlier portal address, then no longer signs in to that account, nor does a CRM
    billing contact with that address. Other accounts of `address` are left as found.
    """
    tables = {row[0] for row in store_conn.execute(
        "select name from sqlite_master where type = 'table' and name in (?, ?)",
        (OVERRIDES_TABLE, CHANGES_TABLE))}
    if tables != {OVERRIDES_TABLE, CHANGES_TABLE}:
        return found
    in_force = _confirmed_addresses(store_conn, [contact.account_key for contact in found])
    replaced = {row[0] for row in store_conn.execute(
        f"select distinct account_key from {CHANGES_TABLE} where confirmed_at is not null"
        " and lower(trim(previous_email)) = ?", (address,))}
    kept = [contact for contact in found
            if in_force.get(contact.account_key, address) == address
            or contact.account_key not in replaced]
    for contact in found:
        if contact not in kept:
            logger.info("portal sign-in for %s: account %s's billing address was changed in "
                        "the portal; the replaced address no longer signs in",
                        mask_address(address), contact.account_key)
    known = {contact.account_key for contact in kept}
    added = sorted(row[0] for row in store_conn.execute(
        f"select account_key from {OVERRIDES_TABLE} where lower(trim(billing_email)) = ?",
        (address,)) if row[0] not in known)
    if not added:
        return kept
    marks = ", ".join("?" for _ in added)
    rows = reader.rows(
        "select account_key, account_name, language from core.dim_accounts"
        f" where account_key in ({marks}) order by account_key", added)
    return kept + [signin.Contact(account_key=row["account_key"],
                                  account_name=row["account_name"] or "",
                                  contact_id=f"portal-billing:{row['account_key']}",
                                  language=row["language"] or "en") for row in rows]


def _confirmed_addresses(store_conn: sqlite3.Connection,
                         account_keys: list[str]) -> dict[str, str]:
    """The confirmed billing address (lower-case) of each of these accounts that has one."""
    if not account_keys:
        return {}
    marks = ", ".join("?" for _ in account_keys)
    return dict(store_conn.execute(
        f"select account_key, lower(trim(billing_email)) from {OVERRIDES_TABLE}"
        f" where billing_email is not null and account_key in ({marks})",
        account_keys).fetchall())


if billing_address_contacts not in signin.CONTACT_FINDERS:
    signin.CONTACT_FINDERS.append(billing_address_contacts)


def _upsert_override(conn: sqlite3.Connection, account_key: str, now: dt.datetime,
                     by: str, *, billing_email: str | None = None,
                     preference: str | None = None,
                     email_consent: bool | None = None) -> None:
    """Set the given fields of the account's override; the others keep their value."""
    conn.execute(
        f"""
        insert into {OVERRIDES_TABLE} (account_key, billing_email, delivery_preference,
            email_consent, changed_at, changed_by)
        values (?, ?, ?, ?, ?, ?)
        on conflict (account_key) do update set
            billing_email = coalesce(excluded.billing_email, billing_email),
            delivery_preference = coalesce(excluded.delivery_preference,
                                           delivery_preference),
            email_consent = coalesce(excluded.email_consent, email_consent),
            changed_at = excluded.changed_at,
            changed_by = excluded.changed_by
        """,
        (account_key, billing_email, preference,
         None if email_consent is None else int(email_consent), _stamp(now), by))


def _change_of(row: sqlite3.Row) -> AddressChange:
    return AddressChange(
        change_id=row["change_id"], account_key=row["account_key"],
        new_email=row["new_email"], previous_email=row["previous_email"],
        customer_name=row["customer_name"], language=row["language"],
        requested_by=row["requested_by"],
        requested_at=_moment(row["requested_at"]), expires_at=_moment(row["expires_at"]),
        confirmed_at=_moment(row["confirmed_at"]) if row["confirmed_at"] else None,
    )


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
