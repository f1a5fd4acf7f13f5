"""997 acknowledgements read back into a real outbox's audit trail.

Each test queues X12 810s (written by `write_810` with control numbers from a real
`ControlNumbers`) in a real Outbox with the plan EDI then email, sends them through the
EDI drop, and then plays the partner: a 997 made with `write_997`, or written by hand,
lands in the inbound folder (or on the partner's SFTP server, or in S3) and
`read_acknowledgements` reads it. Invoice n gets interchange, group and transaction set n
(ST02 000n), since each allocation takes the next of all three numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from aws_server import aws, aws_server  # noqa: F401 (pytest fixtures)
from outbox_support import email_send, invoice_id, invoice_number
from sftp_server import sftp_server_fixture  # noqa: F401 (pytest fixture)

from q2c.delivery.acks import read_acknowledgements
from q2c.delivery.edi import EdiDropChannel
from q2c.delivery.envelope import EDI, EMAIL
from q2c.delivery.mail_transport import EmlFolderTransport
from q2c.delivery.outbox import Outbox, OutboxItem, PlannedSend, attempt_key, document_key
from q2c.delivery.policy import ALERT, FAILOVER, load_policy, parse_policy
from q2c.einvoice.ubl import read_ubl
from q2c.opsdb import connect
from q2c.x12 import ControlNumbers, Controls, SegmentError, TradingPartner, write_810, write_997

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "einvoice-examples"
CREATED = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
ANSWERED = dt.datetime(2026, 3, 3, 10, 15, tzinfo=dt.UTC)
PARTNER = TradingPartner(
    name="acme-stores", version="004010", gs_version_suffix="",
    sender_qualifier="ZZ", sender_id="NORTHWIND", receiver_qualifier="ZZ",
    receiver_id="ACMESTORES", gs_sender="NORTHWIND", gs_receiver="ACMESTORES",
)
PARTNERS = {PARTNER.name: PARTNER}
ALERT_POLICY = """
rules:
  - name: x12-partners
    match:
      preference: edi
    channels: [edi, email]
    on_edi_rejection: alert
  - name: default
    channels: [email]
"""
# The ISA of a 997 from ACMESTORES to NORTHWIND, without its terminator: 105 characters.
ISA_997 = ("ISA*00*          *00*          *ZZ*ACMESTORES     *ZZ*NORTHWIND      "
           "*260303*1015*U*00401*000000901*0*P*>")


class Partner:
    """The outbox, the 810s it sent to acme-stores, and the partner's inbound folder."""

    def __init__(self, root: Path, rule: str = "edi-preferred") -> None:
        self.root = root
        self.outbox = Outbox(root / "ops.sqlite")
        self.controls = ControlNumbers(root / "ops.sqlite")
        self.outbound = root / "edi-outbound"
        self.inbound = root / "edi-inbound"
        self.inbound.mkdir(parents=True)
        self.mail = root / "mail"
        self.rule = rule
        self.sent: dict[int, str] = {}
        self.invoice = read_ubl((EXAMPLES / "peppol-bis3-examples" / "base-example.xml")
                                .read_bytes())

    def queue(self, *numbers: int) -> None:
        items = []
        for n in numbers:
            key = document_key(invoice_id(n))
            controls = self.controls.allocate(PARTNER, key, invoice_number(n))
            text = write_810(dataclasses.replace(self.invoice, number=invoice_number(n)),
                             PARTNER, controls, created_at=CREATED)
            self.sent[n] = text
            edi = PlannedSend(EDI, "ZZ:ACMESTORES", text.encode("ascii"),
                              f"{invoice_number(n)}.x12", "application/edi-x12")
            items.append(OutboxItem(
                invoice_id=invoice_id(n), invoice_number=invoice_number(n),
                document_id=f"doc-{n:03d}", account_key="acme", plan=(edi, email_send(n)),
                decision={"rule": self.rule, "channels": [EDI, EMAIL]},
            ))
        self.outbox.enqueue(items, "queue-1")

    def deliver(self, run_id: str = "deliver-1", edi: EdiDropChannel | None = None):
        return self.outbox.process(
            {EDI: edi or EdiDropChannel(str(self.outbound)),
             EMAIL: EmlFolderTransport(self.mail)}, run_id)

    def answer(self, n: int, status: str = "A", errors=(), *, name: str | None = None,
               folder: Path | None = None) -> Path:
        """Drop the partner's 997 for invoice n (its own control numbers 900 + n)."""
        text = write_997(self.sent[n], status, errors,
                         controls=Controls(900 + n, 900 + n, 1), created_at=ANSWERED)
        return self.drop(text, name or f"997-{n}.x12", folder)

    def drop(self, text: str, name: str, folder: Path | None = None) -> Path:
        path = (folder or self.inbound) / name
        path.write_bytes(text.encode("ascii"))
        return path

    def read(self, policy=None, run_id: str = "acks-1", inbound: str | None = None, **options):
        return read_acknowledgements(
            inbound or str(self.inbound), self.outbox, self.controls, PARTNERS,
            policy or load_policy(), run_id, **options)

    def events(self, n: int) -> list[tuple[str, str | None, str]]:
        return [(e.event, e.channel, e.detail)
                for e in self.outbox.events(document_key(invoice_id(n)))]

    def event_names(self, n: int) -> list[str]:
        return [event for event, _, _ in self.events(n)]

    def row(self, n: int):
        with connect(self.outbox.store_path) as conn:
            return conn.execute("select * from outbox where document_key = ?",
                                (document_key(invoice_id(n)),)).fetchone()


def sha12(path_or_bytes) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


def listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def partner(tmp_path) -> Partner:
    world = Partner(tmp_path)
    world.queue(1, 2, 3)
    assert world.deliver().sent == 3
    return world


def test_the_810s_went_out_with_their_control_numbers(partner):
    for n in (1, 2, 3):
        key = attempt_key(document_key(invoice_id(n)), EDI)
        sidecar = json.loads((partner.outbound / f"{key}.json").read_text())
        assert sidecar["control_numbers"] == {"isa13": f"00000000{n}", "gs06": str(n),
                                              "st02": f"000{n}"}
        assert sidecar["receiver"]["value"] == "ZZ:ACMESTORES"


def test_an_accepted_997_is_an_acknowledged_event_on_the_document(partner):
    dropped = partner.answer(1, "A")
    digest = sha12(dropped)

    report = partner.read()

    assert report.counts() == {"files_read": 1, "already_read": 0, "accepted": 1,
                               "rejected": 0, "failed_over": 0, "alerts": 0, "problems": 0}
    assert partner.event_names(1) == ["queued", "claimed", "sent", "acknowledged"]
    event = partner.outbox.events(document_key(invoice_id(1)))[-1]
    assert event.detail == "997 from acme-stores: accepted (A) for group 1 transaction set 0001"
    assert (event.channel, event.attempt_key, event.run_id) == (EDI, None, "acks-1")
    assert event.location == str(dropped)
    assert partner.row(1)["status"] == "sent"
    assert listing(partner.inbound) == ["processed"]
    assert listing(partner.inbound / "processed") == [f"{digest}-997-1.x12"]
    assert partner.outbox.verify() == []


def test_accepted_with_errors_names_the_segment_and_element(partner):
    partner.answer(1, "E", [SegmentError("DTM", 5, element=2, element_code="8",
                                         bad_value="20261399")])

    report = partner.read()

    assert [(o.invoice_number, o.status, o.action) for o in report.accepted] == [
        (invoice_number(1), "E", "recorded")]
    assert partner.events(1)[-1] == (
        "acknowledged", EDI,
        "997 from acme-stores: accepted with errors (E) for group 1 transaction set 0001: "
        "DTM at segment 5, element 02: invalid date (value '20261399')")
    assert partner.row(1)["status"] == "sent"


def test_a_rejecting_997_fails_over_to_email(partner):
    partner.answer(2, "R", [SegmentError("IT1", 7, element=4, element_code="6",
                                         bad_value="9,5")])

    report = partner.read()

    reason = ("IT1 at segment 7, element 04: invalid character in data element "
              "(value '9,5')")
    assert [(o.invoice_number, o.status, o.action) for o in report.failed_over] == [
        (invoice_number(2), "R", FAILOVER)]
    assert report.alerts == []
    assert partner.events(2)[3:] == [
        ("ack_rejected", EDI,
         f"997 from acme-stores: rejected (R) for group 2 transaction set 0002: {reason}"),
        ("bounced", EDI,
         f"rejected by acme-stores in a 997 (R) for group 2 transaction set 0002: {reason}"),
        ("failed_over", EDI,
         f"edi -> email: bounced: rejected by acme-stores in a 997 (R) for group 2 "
         f"transaction set 0002: {reason}"),
    ]
    row = partner.row(2)
    assert (row["status"], row["channel_index"]) == ("queued", 1)
    assert partner.event_names(1) == ["queued", "claimed", "sent"]  # untouched

    again = partner.deliver("deliver-2")

    assert [(o.invoice_number, o.channel) for o in again.outcomes] == [
        (invoice_number(2), EMAIL)]
    assert partner.row(2)["sent_channel"] == EMAIL
    assert [path.name for path in partner.mail.rglob("*.eml")] == [
        f"{invoice_number(2)}-{attempt_key(document_key(invoice_id(2)), EMAIL)[:12]}.eml"]
    assert partner.outbox.verify() == []


def test_a_hand_written_997_rejecting_one_set_with_an_element_error(partner):
    partner.drop("~\n".join([
        ISA_997,
        "GS*FA*ACMESTORES*NORTHWIND*20260303*1015*901*X*004010",
        "ST*997*0001",
        "AK1*IN*3",
        "AK2*810*0003",
        "AK3*TDS*9**8",
        "AK4*1**1",
        "AK5*R*5",
        "AK9*R*1*1*0",
        "SE*8*0001",
        "GE*1*901",
        "IEA*1*000000901",
    ]) + "~\n", "acme-997-0901.edi")

    report = partner.read()

    assert [(o.invoice_number, o.group_control, o.st_control, o.status) for o in
            report.rejected] == [(invoice_number(3), 3, 3, "R")]
    assert partner.events(3)[3] == (
        "ack_rejected", EDI,
        "997 from acme-stores: rejected (R) for group 3 transaction set 0003: "
        "TDS at segment 9, element 01: mandatory data element missing")
    assert partner.event_names(3)[4:] == ["bounced", "failed_over"]
    assert partner.row(3)["status"] == "queued"


def test_a_hand_written_997_rejecting_the_whole_group_with_ak9_alone(partner):
    isa = ISA_997.replace("*", "|").replace("000000901", "000000902")
    partner.drop("~".join([
        isa,
        "GS|FA|ACMESTORES|NORTHWIND|20260303|1015|902|X|004010",
        "ST|997|0001",
        "AK1|IN|1",
        "AK9|R|1|1|0|2",
        "SE|4|0001",
        "GE|1|902",
        "IEA|1|000000902",
    ]) + "~", "acme-997-0902.edi")

    report = partner.read()

    assert [(o.invoice_number, o.status, o.errors) for o in report.rejected] == [
        (invoice_number(1), "R",
         ("functional group: functional group version not supported",))]
    assert partner.events(1)[3] == (
        "ack_rejected", EDI,
        "997 from acme-stores: rejected (R) for group 1 transaction set 0001: "
        "functional group: functional group version not supported")


def test_the_alert_rule_leaves_a_rejected_invoice_sent_and_lists_it(tmp_path):
    world = Partner(tmp_path, rule="x12-partners")
    world.queue(1)
    world.deliver()
    world.answer(1, "R", [SegmentError("N1", 4, code="3")])

    report = world.read(parse_policy(ALERT_POLICY))

    assert [(o.invoice_number, o.action) for o in report.alerts] == [
        (invoice_number(1), ALERT)]
    assert report.needs_attention
    assert world.event_names(1) == ["queued", "claimed", "sent", "ack_rejected"]
    assert world.events(1)[-1][2] == (
        "997 from acme-stores: rejected (R) for group 1 transaction set 0001: "
        "N1 at segment 4: mandatory segment missing")
    row = world.row(1)
    assert (row["status"], row["sent_channel"]) == ("sent", EDI)


def test_reading_the_same_997s_again_changes_nothing(partner):
    accepted = partner.answer(1, "A").read_bytes()
    rejected = partner.answer(2, "R", [SegmentError("IT1", 7)]).read_bytes()
    first = partner.read()
    events_after_first = [partner.events(n) for n in (1, 2, 3)]
    # The partner drops the same files again, one under another name.
    partner.drop(accepted.decode(), "997-1.x12")
    partner.drop(rejected.decode(), "resent-997-2.x12")

    second = partner.read(run_id="acks-2")

    assert (len(first.files_read), len(first.outcomes)) == (2, 2)
    assert second.outcomes == [] and second.files_read == []
    assert sorted(Path(source).name for source in second.already_read) == [
        "997-1.x12", "resent-997-2.x12"]
    assert [partner.events(n) for n in (1, 2, 3)] == events_after_first
    assert listing(partner.inbound / "processed") == sorted([
        f"{sha12(accepted)}-997-1.x12", f"{sha12(rejected)}-997-2.x12",
        f"{sha12(rejected)}-resent-997-2.x12"])


def test_files_that_match_nothing_are_quarantined_and_named(partner):
    good = partner.answer(1, "A")
    partner.drop("Thanks for the invoices!\n", "notes.txt")
    partner.drop(partner.sent[2], "echo-810.x12")
    stranger = write_997(partner.sent[3], "A", controls=Controls(7, 7, 7),
                         created_at=ANSWERED).replace("ACMESTORES     ", "STRANGER       ", 1)
    partner.drop(stranger, "stranger.x12")
    unknown_group = partner.answer(3, "A", name="unknown-group.x12").read_text().replace(
        "AK1*IN*3", "AK1*IN*77").replace("AK2*810*0003", "AK2*810*0077")
    partner.drop(unknown_group, "unknown-group.x12")

    report = partner.read()

    assert [Path(s).name for s in report.files_read] == [good.name]
    assert partner.event_names(1)[-1] == "acknowledged"
    reasons = {Path(problem.source).name: problem.reason for problem in report.problems}
    inbound = partner.inbound
    assert reasons == {
        "notes.txt": f"{inbound / 'notes.txt'} is not a readable 997: the text does not "
                     "start with an ISA segment; an X12 interchange begins with 'ISA' "
                     "followed by its element separator",
        "echo-810.x12": f"{inbound / 'echo-810.x12'} is not a readable 997: the "
                        "interchange holds no 997 transaction set (ST*997)",
        "stranger.x12": f"{inbound / 'stranger.x12'}: ISA06 sender 'STRANGER' is no "
                        "trading partner's receiver_id: add the partner's profile, or check "
                        "who sent this file",
        "unknown-group.x12": f"{inbound / 'unknown-group.x12'}: AK2 names transaction set "
                             "0077 of group 77, which q2c never sent to acme-stores",
    }
    assert sorted(name.split("-", 1)[1] for name in listing(inbound / "quarantine")) == [
        "echo-810.x12", "notes.txt", "stranger.x12", "unknown-group.x12"]
    assert listing(inbound) == ["processed", "quarantine"]
    assert [partner.event_names(n)[-1] for n in (2, 3)] == ["sent", "sent"]


def test_a_quarantined_file_put_back_after_a_fix_records_nothing_twice(partner):
    """One interchange, two 997 groups: group 1 is ours, group 77 is not."""
    text = "~\n".join([
        ISA_997.replace("000000901", "000000903"),
        "GS*FA*ACMESTORES*NORTHWIND*20260303*1015*903*X*004010",
        "ST*997*0001", "AK1*IN*1", "AK9*A*1*1*1", "SE*4*0001",
        "ST*997*0002", "AK1*IN*77", "AK9*A*1*1*1", "SE*4*0002",
        "GE*2*903", "IEA*1*000000903",
    ]) + "~\n"
    dropped = partner.drop(text, "two-groups.x12")

    first = partner.read()

    assert [o.invoice_number for o in first.accepted] == [invoice_number(1)]
    assert [p.reason for p in first.problems] == [
        f"{dropped}: AK1 names group 77, which q2c never sent to acme-stores"]
    quarantined = partner.inbound / "quarantine" / f"{sha12(text.encode())}-two-groups.x12"
    assert first.problems[0].moved_to == str(quarantined)
    shutil.move(quarantined, dropped)  # someone looked into it and put it back

    second = partner.read(run_id="acks-2")

    assert [(o.invoice_number, o.new) for o in second.accepted] == [(invoice_number(1), False)]
    assert partner.event_names(1) == ["queued", "claimed", "sent", "acknowledged"]
    assert len(second.problems) == 1


def test_acknowledgements_over_sftp(tmp_path, sftp_server):
    world = Partner(tmp_path)
    world.queue(1, 2)
    sftp = {"key_path": sftp_server.key_path, "known_hosts_path": sftp_server.known_hosts_path,
            "timeout": 10}
    report = world.deliver(edi=EdiDropChannel(sftp_server.url("/outbound"), **sftp))
    assert report.sent == 2
    outbound = sftp_server.root / "outbound"
    assert len(list(outbound.glob("*.x12"))) == 2
    inbound = sftp_server.root / "inbound"
    accepted = world.answer(1, "A", folder=inbound).read_bytes()
    rejected = world.answer(2, "R", [SegmentError("BIG", 2, element=2)],
                            folder=inbound).read_bytes()

    acks = world.read(inbound=sftp_server.url("/inbound"), **sftp)

    assert [(o.invoice_number, o.status, o.action) for o in acks.outcomes] == [
        (invoice_number(1), "A", "recorded"), (invoice_number(2), "R", FAILOVER)]
    assert acks.outcomes[0].source == f"{sftp_server.url('/inbound')}/997-1.x12"
    assert world.event_names(1)[-1] == "acknowledged"
    assert world.event_names(2)[-3:] == ["ack_rejected", "bounced", "failed_over"]
    assert listing(inbound) == ["processed"]
    assert listing(inbound / "processed") == [f"{sha12(accepted)}-997-1.x12",
                                              f"{sha12(rejected)}-997-2.x12"]

    again = world.read(inbound=sftp_server.url("/inbound"), run_id="acks-2", **sftp)

    assert (again.outcomes, again.already_read, again.problems) == ([], [], [])


def test_acknowledgements_from_s3(tmp_path, aws):  # noqa: F811
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="edi-in", CreateBucketConfiguration={"LocationConstraint":
                                                                 aws.region})
    world = Partner(tmp_path)
    world.queue(1)
    world.deliver()
    body = world.answer(1, "A").read_bytes()
    s3.put_object(Bucket="edi-in", Key="acme/997/997-1.x12", Body=body)

    report = world.read(inbound="s3://edi-in/acme/997", s3_client=s3)

    assert report.files_read == ["s3://edi-in/acme/997/997-1.x12"]
    assert world.event_names(1)[-1] == "acknowledged"
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="edi-in")["Contents"]]
    assert keys == [f"acme/997/processed/{sha12(body)}-997-1.x12"]
