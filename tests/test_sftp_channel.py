"""The EDI channel's SFTP target against a real SFTP server on loopback (asyncssh).

Each test starts its own server chrooted to a tmp folder (`sftp_server.py`), so what the
partner would pick up is checked by reading that folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from pathlib import Path

import asyncssh
import pytest
from sftp_server import SftpTestServer, sftp_server_fixture  # noqa: F401 (pytest fixture)

from q2c.delivery.edi import EdiDropChannel
from q2c.delivery.envelope import EDI, Envelope
from q2c.delivery.errors import (
    ChannelUnavailableError,
    DeliveryConfigurationError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.delivery.sftp import parse_sftp_target

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "einvoice-examples"
SELLER_PEPPOL = "9930:DE811907980"
BUYER_PEPPOL = "0088:5790000435951"
INVOICE_NUMBER = "INV-2026-000123"


def key_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def ubl(name: str = "base-example.xml") -> bytes:
    return (EXAMPLES / "peppol-bis3-examples" / name).read_bytes()


def envelope(payload: bytes, key: str) -> Envelope:
    return Envelope(
        key=key, invoice_id="129", invoice_number=INVOICE_NUMBER, document_id="doc-1",
        channel=EDI, recipient=BUYER_PEPPOL, payload=payload, filename="INV.xml",
        content_type="application/xml", sender_id=SELLER_PEPPOL,
    )


def channel(server: SftpTestServer, *, url: str | None = None, key_path: Path | None = None,
            known_hosts: Path | None = None) -> EdiDropChannel:
    return EdiDropChannel(
        url or server.url("/outbound"), key_path=key_path or server.key_path,
        known_hosts_path=known_hosts or server.known_hosts_path, timeout=10,
    )


def names(folder: Path) -> list[str]:
    """Every entry, dot-files included, so a left-over temporary file shows."""
    return sorted(path.name for path in folder.iterdir())


def test_sftp_drop_lands_payload_then_sidecar(sftp_server):
    payload, key = ubl(), key_of("sftp-drop")

    receipt = channel(sftp_server).send(envelope(payload, key))

    outbound = sftp_server.root / "outbound"
    assert names(outbound) == [f"{key}.json", f"{key}.xml"]
    assert (outbound / f"{key}.xml").read_bytes() == payload
    sha256 = hashlib.sha256(payload).hexdigest()
    sidecar = json.loads((outbound / f"{key}.json").read_text())
    assert (sidecar["sha256"], sidecar["size"], sidecar["file"]) == (sha256, len(payload),
                                                                     f"{key}.xml")
    assert sidecar["receiver"]["value"] == BUYER_PEPPOL
    assert receipt.location == f"sftp://q2c@127.0.0.1:{sftp_server.port}/outbound/{key}.xml"
    assert receipt.reference == f"sha256:{sha256}"
    # Each file arrived under a temporary dot-name and was renamed into place, the payload
    # before the sidecar that tells the partner the pair is complete.
    assert sftp_server.renamed == [
        (f"/outbound/.{key}.xml.part", f"/outbound/{key}.xml"),
        (f"/outbound/.{key}.json.part", f"/outbound/{key}.json"),
    ]


def test_sftp_resend_overwrites_the_same_names(sftp_server):
    key = key_of("sftp-resend")
    drop = channel(sftp_server)
    drop.send(envelope(ubl(), key))
    corrected = ubl("vat-category-Z.xml")

    drop.send(envelope(corrected, key))

    outbound = sftp_server.root / "outbound"
    assert names(outbound) == [f"{key}.json", f"{key}.xml"]
    assert (outbound / f"{key}.xml").read_bytes() == corrected
    assert json.loads((outbound / f"{key}.json").read_text())["sha256"] == (
        hashlib.sha256(corrected).hexdigest())


def test_sftp_refuses_a_host_key_missing_from_known_hosts(sftp_server, tmp_path):
    known_hosts = tmp_path / "empty_known_hosts"
    known_hosts.write_text("")
    offered = sftp_server.host_key.export_public_key().decode().split()[1]
    fingerprint = base64.b64encode(
        hashlib.sha256(base64.b64decode(offered)).digest()).decode().rstrip("=")

    with pytest.raises(ChannelUnavailableError) as caught:
        channel(sftp_server, known_hosts=known_hosts).send(envelope(ubl(), key_of("unknown")))

    message = str(caught.value)
    assert f"SHA256:{fingerprint}" in message
    assert "not in" in message and "never trusts a host key on first sight" in message
    assert names(sftp_server.root / "outbound") == []
    assert known_hosts.read_text() == ""  # never added


def test_sftp_refuses_a_changed_host_key(sftp_server, tmp_path):
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    known_hosts = sftp_server.write_known_hosts(tmp_path / "stale_known_hosts", impostor)
    before = known_hosts.read_text()

    with pytest.raises(ChannelUnavailableError, match="not the one recorded in .*nothing "
                                                      "was sent"):
        channel(sftp_server, known_hosts=known_hosts).send(envelope(ubl(), key_of("changed")))

    assert names(sftp_server.root / "outbound") == []
    assert known_hosts.read_text() == before


def test_sftp_refuses_a_client_key_the_server_does_not_know(sftp_server, tmp_path):
    stranger = tmp_path / "stranger_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger), "openssh")

    with pytest.raises(ChannelUnavailableError,
                       match=f"refused the key {stranger} for user 'q2c'"):
        channel(sftp_server, key_path=stranger).send(envelope(ubl(), key_of("wrong-key")))

    assert names(sftp_server.root / "outbound") == []


def test_sftp_refuses_the_right_key_for_another_user(sftp_server):
    url = sftp_server.url("/outbound", user="someone-else")
    with pytest.raises(ChannelUnavailableError, match="for user 'someone-else'"):
        channel(sftp_server, url=url).send(envelope(ubl(), key_of("wrong-user")))


def test_sftp_closed_port_is_the_channels_fault(sftp_server):
    drop = channel(sftp_server)
    sftp_server.stop()  # nothing listens on its port any more

    with pytest.raises(ChannelUnavailableError,
                       match=f"cannot reach SFTP server 127.0.0.1:{sftp_server.port} .*"
                             "Connection refused.*check the host and port"):
        drop.send(envelope(ubl(), key_of("closed")))


def test_sftp_server_that_never_speaks_times_out_as_the_channels_fault(sftp_server):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the connection is taken, no SSH banner ever comes
        port = silent.getsockname()[1]
        drop = EdiDropChannel(f"sftp://q2c@127.0.0.1:{port}/outbound",
                              key_path=sftp_server.key_path,
                              known_hosts_path=sftp_server.known_hosts_path, timeout=0.5)
        with pytest.raises(ChannelUnavailableError,
                           match=f"cannot reach SFTP server 127.0.0.1:{port} "
                                 r"\((Error reading SSH protocol banner|no SSH session came "
                                 r"up within 0.5s)"):
            drop.send(envelope(ubl(), key_of("silent")))


def test_sftp_missing_key_or_known_hosts_file_is_the_channels_fault(sftp_server, tmp_path):
    with pytest.raises(ChannelUnavailableError,
                       match="cannot load the SFTP private key .*no-such-key"):
        channel(sftp_server, key_path=tmp_path / "no-such-key").send(
            envelope(ubl(), key_of("no-key")))
    with pytest.raises(ChannelUnavailableError,
                       match="cannot read the known_hosts file .*no-such-known-hosts"):
        channel(sftp_server, known_hosts=tmp_path / "no-such-known-hosts").send(
            envelope(ubl(), key_of("no-known-hosts")))


def test_sftp_read_only_folder_is_a_permanent_failure(sftp_server):
    sftp_server.read_only("/outbound")

    with pytest.raises(PermanentDeliveryError,
                       match="denied permission .*give user 'q2c' access to /outbound"):
        channel(sftp_server).send(envelope(ubl(), key_of("read-only")))

    assert names(sftp_server.root / "outbound") == []


def test_sftp_missing_folder_is_a_permanent_failure(sftp_server):
    with pytest.raises(PermanentDeliveryError, match="no such file or folder"):
        channel(sftp_server, url=sftp_server.url("/no-such-folder")).send(
            envelope(ubl(), key_of("missing-folder")))


def test_sftp_connection_cut_mid_upload_is_transient_and_a_retry_lands_cleanly(sftp_server):
    key, payload = key_of("cut"), ubl()
    drop = channel(sftp_server)
    sftp_server.drop_next_writes(1)

    with pytest.raises(TransientDeliveryError, match="broke off while writing") as caught:
        drop.send(envelope(payload, key))

    assert not isinstance(caught.value, ChannelUnavailableError)
    assert sftp_server.dropped == 1
    outbound = sftp_server.root / "outbound"
    # Only the temporary name was touched: the partner sees no file.
    assert [name for name in names(outbound) if not name.startswith(".")] == []

    drop.send(envelope(payload, key))

    assert names(outbound) == [f"{key}.json", f"{key}.xml"]
    assert (outbound / f"{key}.xml").read_bytes() == payload


def test_sftp_target_needs_a_key_and_known_hosts():
    with pytest.raises(DeliveryConfigurationError, match="known_hosts"):
        EdiDropChannel("sftp://q2c@127.0.0.1:2222/outbound", key_path="/keys/q2c")
    with pytest.raises(DeliveryConfigurationError, match="key file"):
        EdiDropChannel("sftp://q2c@127.0.0.1:2222/outbound", known_hosts_path="/known")


@pytest.mark.parametrize(("target", "expected"), [
    ("sftp://q2c@edi.partner.example:2222/in/810",
     ("q2c", "edi.partner.example", 2222, "/in/810")),
    ("sftp://billing@edi.partner.example/outbound/",
     ("billing", "edi.partner.example", 22, "/outbound")),
    ("SFTP://q2c@[::1]:2022/x12", ("q2c", "::1", 2022, "/x12")),
])
def test_sftp_target_parsing(target, expected):
    location = parse_sftp_target(target)
    assert (location.user, location.host, location.port, location.path) == expected


@pytest.mark.parametrize(("target", "message"), [
    ("sftp://edi.partner.example/in", "names no user"),
    ("sftp://q2c:secret@edi.partner.example/in", "carries a password"),
    ("sftp://q2c@edi.partner.example:99999/in", "bad port"),
    ("sftp://q2c@127.0.0.1:0/out", "bad port 0"),
    ("sftp://u@127.0.0.1/out/%2e%2e/%2e%2e/etc", "'..' segment"),
    ("sftp://u@127.0.0.1/out/../etc", "'..' segment"),
    ("sftp://u@127.0.0.1/out%00x", "control character"),
    ("sftp://u@127.0.0.1/out%0Ax", "control character"),
    ("sftp://u%07@127.0.0.1/out", "control character"),
])
def test_sftp_target_errors_say_what_to_write(target, message):
    with pytest.raises(ValueError, match=message) as raised:
        parse_sftp_target(target)
    if "password" not in message:
        assert "sftp://user@host:port/path" in str(raised.value)
