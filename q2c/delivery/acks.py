"""Read X12 997 functional acknowledgements back into the delivery audit trail.

A trading partner's translator answers each 810 group with a 997: AK1 names our group
(GS06), each AK2 one of its transaction sets (ST02) with its AK5 status, and AK9 the status
of the whole group. The 997s land where the partner puts them: an inbound folder, an
`s3://bucket/prefix` or an `sftp://user@host:port/path`. `read_acknowledgements` reads
every file there and, for each acknowledged 810, finds the document it carried through
the control numbers issued for it (`ControlNumbers.lookup`), then:

- accepted (A) or accepted with errors (E): an `acknowledged` event on the document;
- rejected (AK5 R, or the whole group rejected by AK9 R, M, W or X): an `ack_rejected`
  event naming the rejected segments, then what the document's channel policy rule says
  (`on_edi_rejection`): `failover` records a bounce of the EDI send, so the outbox sends
  the document on the next channel of its plan; `alert` leaves it sent and lists it in the
  report's `alerts` for a person.

The partner is the profile whose `receiver_id` is the 997's interchange sender (ISA06).

Read once: a file whose SHA-256 is recorded in the ops store (`edi_ack_files`) was read
before and changes nothing; a read file moves to `processed/` beside it. A file that is
not a 997, or names a partner or control number q2c never issued, moves to `quarantine/`
and is reported with the file and the segment named; it is not recorded as read, so after
a fix it can be put back and read again (each acknowledgement already recorded is
recognised and not recorded twice). One bad file never stops the others being read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config

from q2c.delivery.envelope import EDI
from q2c.delivery.errors import ChannelUnavailableError, DeliveryError
from q2c.delivery.outbox import ACCEPTED_ACK_STATUSES, Outbox, attempt_key
from q2c.delivery.policy import ALERT, FAILOVER, ChannelPolicy
from q2c.delivery.ses import aws_transport_error
from q2c.delivery.sftp import DEFAULT_TIMEOUT, SftpClient, SftpSession, is_sftp_target
from q2c.opsdb import connect, ensure_schema, transaction
from q2c.x12.ack import FunctionalAck, parse_997
from q2c.x12.control import ControlNumbers
from q2c.x12.profiles import TradingPartner

logger = logging.getLogger(__name__)

PROCESSED = "processed"
QUARANTINE = "quarantine"
INVOICE_GROUP = "IN"  # GS01 / AK1-01 of an 810 group
# AK9-01 codes that reject the whole group, whatever each AK5 says.
GROUP_REJECTED = frozenset({"R", "M", "W", "X"})
STATUS_TEXT = {
    "A": "accepted", "E": "accepted with errors", "P": "partially accepted",
    "R": "rejected", "M": "rejected (message authentication code failed)",
    "W": "rejected (assurance failed validity tests)",
    "X": "rejected (content could not be analyzed)",
}

ACK_FILES_DDL = """
create table if not exists edi_ack_files (
    sha256 text primary key,
    source text not null,
    read_at text not null,
    run_id text not null,
    acknowledgements integer not null
);
"""


@dataclass(frozen=True)
class AckOutcome:
    """One acknowledged 810, as recorded.

    Attributes:
        source: The 997 file it came from.
        partner: The trading partner's profile name.
        group_control: Our GS06, as AK1-02 quotes it.
        st_control: Our ST02, as AK2-02 quotes it.
        document_key: The outbox document the 810 carried.
        invoice_number: Its invoice number.
        attempt_key: The outbox key of its EDI send.
        status: The effective status: AK5-01, or AK9-01 when the group was rejected.
        errors: What the partner named as wrong (segments, elements).
        action: `recorded` (accepted), `failover` or `alert` (rejected).
        new: False when this acknowledgement was recorded by an earlier read.
    """

    source: str
    partner: str
    group_control: int
    st_control: int
    document_key: str
    invoice_number: str
    attempt_key: str
    status: str
    errors: tuple[str, ...]
    action: str
    new: bool = True

    @property
    def accepted(self) -> bool:
        return self.status in ACCEPTED_ACK_STATUSES


@dataclass(frozen=True)
class AckProblem:
    """A file, or a part of one, that could not be matched; `reason` names the segment."""

    source: str
    reason: str
    moved_to: str | None = None


@dataclass
class AckReport:
    """What one read found."""

    run_id: str
    files_read: list[str] = field(default_factory=list)
    already_read: list[str] = field(default_factory=list)
    outcomes: list[AckOutcome] = field(default_factory=list)
    problems: list[AckProblem] = field(default_factory=list)

    @property
    def accepted(self) -> list[AckOutcome]:
        return [outcome for outcome in self.outcomes if outcome.accepted]

    @property
    def rejected(self) -> list[AckOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.accepted]

    @property
    def failed_over(self) -> list[AckOutcome]:
        return [outcome for outcome in self.rejected if outcome.action == FAILOVER]

    @property
    def alerts(self) -> list[AckOutcome]:
        """Rejected documents left sent because their rule says `alert`: a person settles
        them with the partner."""
        return [outcome for outcome in self.rejected if outcome.action == ALERT]

    @property
    def needs_attention(self) -> bool:
        return bool(self.alerts or self.problems)

    def counts(self) -> dict[str, int]:
        """Counts for run metadata."""
        return {
            "files_read": len(self.files_read), "already_read": len(self.already_read),
            "accepted": len(self.accepted), "rejected": len(self.rejected),
            "failed_over": len(self.failed_over), "alerts": len(self.alerts),
            "problems": len(self.problems),
        }


class _Unmatched(ValueError):
    """A 997, or a part of one, that names nothing q2c sent."""


def read_acknowledgements(
    inbound: str,
    outbox: Outbox,
    controls: ControlNumbers,
    partners: Mapping[str, TradingPartner],
    policy: ChannelPolicy,
    run_id: str,
    *,
    key_path: str | Path | None = None,
    known_hosts_path: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    s3_client: Any | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
) -> AckReport:
    """Read every 997 waiting in `inbound` into the audit trail; see the module docstring.

    Args:
        inbound: A folder, `s3://bucket/prefix` or `sftp://user@host:port/path`.
        outbox: The outbox the 810s went through; its store also records the files read.
        controls: The control numbers issued for the 810s.
        partners: The trading-partner profiles (`load_partners()`).
        policy: The channel policy whose rules say `on_edi_rejection`.
        run_id: Recorded on every event (the Dagster run id).
        key_path, known_hosts_path, timeout: For an SFTP inbound (`q2c.delivery.sftp`).
        s3_client, region, endpoint_url: For an S3 inbound, as for the EDI channel.

    Raises:
        DeliveryError: The inbound cannot be listed (server down, login refused, no such
            bucket or folder); nothing was read.
    """
    report = AckReport(run_id=run_id)
    with connect(outbox.store_path) as conn:
        ensure_schema(conn, ACK_FILES_DDL)
    reader = _Reader(outbox, controls, partners, policy, run_id, report)
    with _open_inbox(inbound, key_path=key_path, known_hosts_path=known_hosts_path,
                     timeout=timeout, s3_client=s3_client, region=region,
                     endpoint_url=endpoint_url) as inbox:
        for name in inbox.files():
            reader.take(inbox, name)
    logger.info("997 acknowledgements from %s: %s", inbound, report.counts())
    return report


class _Reader:
    """Reads one file at a time into the report; keeps one file's trouble to that file."""

    def __init__(self, outbox: Outbox, controls: ControlNumbers,
                 partners: Mapping[str, TradingPartner], policy: ChannelPolicy, run_id: str,
                 report: AckReport) -> None:
        self.outbox, self.controls, self.partners = outbox, controls, partners
        self.policy, self.run_id, self.report = policy, run_id, report

    def take(self, inbox: _Inbox, name: str) -> None:
        source = inbox.where(name)
        try:
            data = inbox.read(name)
        except DeliveryError as exc:
            self._problem(source, f"cannot be read ({exc}); left in place for the next run")
            return
        digest = hashlib.sha256(data).hexdigest()
        if self._seen(digest):
            logger.info("997 file %s was read before (sha256 %s); nothing changes", source,
                        digest[:12])
            self.report.already_read.append(source)
            self._move(inbox, name, digest, PROCESSED)
            return
        problems: list[str] = []
        outcomes: list[AckOutcome] = []
        try:
            for group in _parse(data, source):
                try:
                    outcomes += self._group(group, source, digest, problems)
                except _Unmatched as exc:
                    problems.append(str(exc))
        except _Unmatched as exc:
            problems.append(str(exc))
        except Exception as exc:  # a store or code fault: keep the file for the next run
            logger.exception("997 file %s could not be recorded; left in place", source)
            self._problem(source, f"could not be recorded ({type(exc).__name__}: {exc}); "
                                  "left in place for the next run")
            return
        self.report.outcomes += outcomes
        if problems:
            moved = self._move(inbox, name, digest, QUARANTINE)
            for reason in problems:
                self._problem(source, reason, moved)
            return
        self._remember(digest, source, len(outcomes))
        self.report.files_read.append(source)
        self._move(inbox, name, digest, PROCESSED)

    def _group(self, group: FunctionalAck, source: str, digest: str,
               problems: list[str]) -> list[AckOutcome]:
        gs = _number(group.group_control, "AK1-02", source)
        if group.functional_id != INVOICE_GROUP:
            raise _Unmatched(
                f"{source}: AK1 acknowledges a functional group of type "
                f"{group.functional_id!r}, not IN (invoices): q2c sends only 810 groups"
            )
        partner = self._partner(group, source)
        sets = group.transactions
        if not sets:
            # A 997 may answer a whole group with AK9 alone: it applies to every set in it.
            issued = self.controls.lookup(partner.name, gs)
            if not issued:
                raise _Unmatched(f"{source}: AK1 names group {gs}, which q2c never sent to "
                                 f"{partner.name}")
            return [self._record(partner, gs, control.st, control.document_key,
                                 group.status, tuple(group.errors), source, digest)
                    for control in issued]
        outcomes = []
        for answer in sets:
            st = _number(answer.st_control, "AK2-02", source)
            found = self.controls.lookup(partner.name, gs, st)
            if not found:
                problems.append(f"{source}: AK2 names transaction set {st:04d} of group {gs}, "
                                f"which q2c never sent to {partner.name}")
                continue
            status, errors = answer.status, tuple(answer.errors)
            if group.status in GROUP_REJECTED:
                status, errors = group.status, errors + tuple(group.errors)
                errors = errors or (f"AK9: the whole group {gs} was "
                                    f"{STATUS_TEXT[group.status]}",)
            try:
                outcomes.append(self._record(partner, gs, st, found[0].document_key,
                                             status or group.status, errors, source, digest))
            except _Unmatched as exc:
                problems.append(str(exc))
        return outcomes

    def _partner(self, group: FunctionalAck, source: str) -> TradingPartner:
        sender, receiver = group.sender_id.strip(), group.receiver_id.strip()
        candidates = [p for p in self.partners.values() if p.receiver_id == sender]
        if not candidates:
            raise _Unmatched(
                f"{source}: ISA06 sender {sender!r} is no trading partner's receiver_id: "
                "add the partner's profile, or check who sent this file"
            )
        ours = [p for p in candidates if p.sender_id == receiver]
        if not ours:
            raise _Unmatched(
                f"{source}: ISA08 receiver {receiver!r} is not our interchange id with "
                f"{candidates[0].name} ({candidates[0].sender_id!r}): the 997 is for someone "
                "else"
            )
        return ours[0]

    def _record(self, partner: TradingPartner, gs: int, st: int, doc_key: str, status: str,
                errors: tuple[str, ...], source: str, digest: str) -> AckOutcome:
        code = (status or "").strip().upper()
        key = attempt_key(doc_key, EDI)
        what = f"group {gs} transaction set {st:04d}"
        text = STATUS_TEXT.get(code, f"status {code!r}")
        detail = f"997 from {partner.name}: {text} ({code}) for {what}"
        if errors:
            detail += ": " + "; ".join(errors)
        elif code not in ACCEPTED_ACK_STATUSES:
            detail += ": the 997 names no segment"
        try:
            new = self.outbox.record_acknowledgement(
                key, code, detail, self.run_id, reference=f"x12-997:{digest}:{gs}:{st}",
                location=source,
            )
        except LookupError as exc:
            raise _Unmatched(f"{source}: AK2 {what} acknowledges a document that did not go "
                             f"out through this outbox ({exc})") from exc
        number, rule = self._document(doc_key)
        action = "recorded"
        if code not in ACCEPTED_ACK_STATUSES:
            action = self.policy.edi_rejection_action(rule)
            if action == FAILOVER:
                self.outbox.record_bounce(key, f"rejected by {partner.name} in a 997 ({code}) "
                                               f"for {what}: " + ("; ".join(errors) or text),
                                          self.run_id)
            else:
                logger.error("invoice %s was rejected by %s in a 997 (%s, %s) and stays "
                             "sent: settle it with the partner", number, partner.name, code,
                             what)
        return AckOutcome(source=source, partner=partner.name, group_control=gs,
                          st_control=st, document_key=doc_key, invoice_number=number,
                          attempt_key=key, status=code, errors=errors, action=action,
                          new=new)

    def _document(self, doc_key: str) -> tuple[str, str | None]:
        """The invoice number and the policy rule that routed the document."""
        with connect(self.outbox.store_path) as conn:
            row = conn.execute("select invoice_number, decision from outbox "
                               "where document_key = ?", (doc_key,)).fetchone()
        try:
            decision = json.loads(row["decision"] or "{}")
        except ValueError:
            decision = {}
        rule = decision.get("rule") if isinstance(decision, dict) else None
        return row["invoice_number"], rule

    def _seen(self, digest: str) -> bool:
        with connect(self.outbox.store_path) as conn:
            return conn.execute("select 1 from edi_ack_files where sha256 = ?",
                                (digest,)).fetchone() is not None

    def _remember(self, digest: str, source: str, count: int) -> None:
        with connect(self.outbox.store_path) as conn, transaction(conn):
            conn.execute(
                "insert or ignore into edi_ack_files (sha256, source, read_at, run_id, "
                "acknowledgements) values (?, ?, ?, ?, ?)",
                (digest, source, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 self.run_id, count),
            )

    def _move(self, inbox: _Inbox, name: str, digest: str, folder: str) -> str | None:
        try:
            return inbox.move(name, folder, f"{digest[:12]}-{name}")
        except DeliveryError as exc:
            self._problem(inbox.where(name), f"was read but could not be moved to {folder}/ "
                                             f"({exc}); it is recognised by its hash")
            return None

    def _problem(self, source: str, reason: str, moved_to: str | None = None) -> None:
        logger.warning("997 file %s: %s", source, reason)
        self.report.problems.append(AckProblem(source, reason, moved_to))


def _parse(data: bytes, source: str) -> list[FunctionalAck]:
    try:
        groups = parse_997(data.decode("latin-1"))
    except ValueError as exc:
        raise _Unmatched(f"{source} is not a readable 997: {exc}") from exc
    if not groups:
        raise _Unmatched(f"{source} holds no AK1 functional group response")
    return list(groups)


def _number(value: object, element: str, source: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise _Unmatched(f"{source}: {element} is {value!r}, not a control number") from exc


# -- where 997s wait --------------------------------------------------------------------


class _Inbox(Protocol):
    def files(self) -> list[str]: ...

    def read(self, name: str) -> bytes: ...

    def move(self, name: str, folder: str, new_name: str) -> str: ...

    def where(self, name: str) -> str: ...


@contextmanager
def _open_inbox(inbound: str, *, key_path, known_hosts_path, timeout, s3_client, region,
                endpoint_url) -> Iterator[_Inbox]:
    if is_sftp_target(inbound):
        if not key_path or not known_hosts_path:
            raise ChannelUnavailableError(
                f"the 997 inbound {inbound} is an SFTP server: set the SFTP key file and the "
                "known_hosts file holding the server's host key"
            )
        client = SftpClient(inbound, key_path=key_path, known_hosts_path=known_hosts_path,
                            timeout=timeout)
        with client.session(f"reading 997s from {inbound}") as session:
            yield _SftpInbox(session)
    elif inbound.startswith("s3://"):
        yield _S3Inbox(inbound, s3_client, region, endpoint_url)
    else:
        yield _FolderInbox(Path(inbound))


class _FolderInbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def files(self) -> list[str]:
        if not self.folder.is_dir():
            raise ChannelUnavailableError(
                f"the 997 inbound folder {self.folder} does not exist: check the setting"
            )
        found = [path for path in self.folder.iterdir()
                 if path.is_file() and not path.name.startswith(".")]
        return [path.name for path in sorted(found, key=lambda p: (p.stat().st_mtime, p.name))]

    def read(self, name: str) -> bytes:
        try:
            return (self.folder / name).read_bytes()
        except OSError as exc:
            raise DeliveryError(exc.strerror or str(exc)) from exc

    def move(self, name: str, folder: str, new_name: str) -> str:
        target = self.folder / folder / new_name
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(self.folder / name, target)
        except OSError as exc:
            raise DeliveryError(exc.strerror or str(exc)) from exc
        return str(target)

    def where(self, name: str) -> str:
        return str(self.folder / name)


class _S3Inbox:
    def __init__(self, inbound: str, client: Any | None, region: str | None,
                 endpoint_url: str | None) -> None:
        bucket, _, prefix = inbound[len("s3://"):].partition("/")
        if not bucket:
            raise ValueError(f"997 inbound {inbound!r} names no bucket: use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.client = client or boto3.client(
            "s3", region_name=region, endpoint_url=endpoint_url,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=10,
                          read_timeout=60,
                          s3={"addressing_style": "path"} if endpoint_url else {}),
        )

    def files(self) -> list[str]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/")
            objects = [item for page in pages for item in page.get("Contents", [])]
        except Exception as exc:  # boto3 raises many types; all are classified here
            raise self._error(exc, "listing") from exc
        named = [(item["LastModified"], item["Key"][len(self.prefix):]) for item in objects]
        return [name for _, name in sorted(named) if name and not name.startswith(".")]

    def read(self, name: str) -> bytes:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)
            return reply["Body"].read()
        except Exception as exc:  # boto3 raises many types; all are classified here
            raise self._error(exc, f"reading {name} from") from exc

    def move(self, name: str, folder: str, new_name: str) -> str:
        key = f"{self.prefix}{folder}/{new_name}"
        try:
            self.client.copy_object(Bucket=self.bucket, Key=key,
                                    CopySource={"Bucket": self.bucket, "Key": self.prefix + name})
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)
        except Exception as exc:  # boto3 raises many types; all are classified here
            raise self._error(exc, f"moving {name} in") from exc
        return f"s3://{self.bucket}/{key}"

    def where(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    def _error(self, exc: Exception, step: str) -> DeliveryError:
        return aws_transport_error(
            exc, f"{step} the 997 inbound s3://{self.bucket}/{self.prefix}",
            f"check that bucket {self.bucket} exists and this process may read and move "
            "objects in it",
        )


class _SftpInbox:
    def __init__(self, session: SftpSession) -> None:
        self.session = session

    def files(self) -> list[str]:
        return self.session.list_files()

    def read(self, name: str) -> bytes:
        return self.session.read(name)

    def move(self, name: str, folder: str, new_name: str) -> str:
        return self.session.move(name, folder, new_name)

    def where(self, name: str) -> str:
        return f"{self.session.location.url.rstrip('/')}/{name}"
