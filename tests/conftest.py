"""Shared pytest fixtures.

SMTP: a real aiosmtpd server on 127.0.0.1 with a port picked by the OS. Its handler keeps
every accepted message and can be told to answer the next MAIL, RCPT or DATA commands with
a given reply ('451 ...', '550 ...'), so tests drive real SMTP error paths.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    """Stop at once, with the fix, when the shared folder beside the repository is missing.

    The real-shaped source tables, the e-invoice examples and the official e-invoice rules
    are kept in `../shared` (data/ and validators/), not in the repository.
    """
    missing = [str(SHARED / name) for name in ("data", "validators")
               if not (SHARED / name).is_dir()]
    if missing:
        pytest.exit(
            f"the test suite needs the shared folder beside the repository; missing: "
            f"{', '.join(missing)}. Place (or link) it at {SHARED} as the README says.",
            returncode=2,
        )
    if not hasattr(config, "workerinput"):
        _parse_dbt_project_once()


def _parse_dbt_project_once() -> None:
    """Parse the dbt project before any test worker starts.

    Each worker process loads the Dagster definitions, which parse the project into
    `dbt_project/target` when its manifest is missing or stale (a fresh clone). Parsed here
    first, the workers find it fresh, and two of them never write it at the same time.
    """
    from orchestration.dbt_project import ensure_manifest

    ensure_manifest()


SMTP_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedMail:
    """One message the test server accepted: the envelope and the raw content."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def parsed(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.content)


@dataclass
class RecordingHandler:
    """aiosmtpd handler that stores accepted mail and plays scripted error replies."""

    messages: list[ReceivedMail] = field(default_factory=list)
    mail_replies: list[str] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_replies:
            return self.mail_replies.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        )
        return "250 Message accepted for delivery"


class _LoopbackController(Controller):
    """A Controller that may bind port 0: it learns the real port before its self-check."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class SmtpTestServer:
    """A running test SMTP server: where it listens and what it received."""

    host: str
    port: int
    handler: RecordingHandler
    controller_options: dict[str, Any]
    controller: Controller | None = None
    client_ssl_context: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None

    @property
    def messages(self) -> list[ReceivedMail]:
        return self.handler.messages

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def start(self) -> None:
        """(Re)start on the same port, with the same handler and received messages."""
        if self.controller is None:
            self.controller = _start_controller(
                self.handler, self.port, **self.controller_options
            )


def _start_controller(handler: RecordingHandler, port: int, **options: Any) -> Controller:
    controller = _LoopbackController(
        handler, hostname=SMTP_HOST, port=port, server_hostname="localhost", **options
    )
    controller.start()
    return controller


def _running_server(**options: Any) -> SmtpTestServer:
    handler = RecordingHandler()
    controller = _start_controller(handler, 0, **options)
    return SmtpTestServer(
        host=SMTP_HOST,
        port=controller.port,
        handler=handler,
        controller_options=options,
        controller=controller,
    )


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    """A plain SMTP server on loopback; `.host`, `.port`, `.messages` (received mail)."""
    server = _running_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_starttls_server(tmp_path: Path) -> Iterator[SmtpTestServer]:
    """An SMTP server that requires STARTTLS and AUTH, with a self-signed certificate.

    `.client_ssl_context` trusts that certificate; `.username`/`.password` log in.
    """
    cert_file, key_file = _self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    username, password = "billing", "s3cret-for-tests"

    def authenticator(server, session, envelope, mechanism, auth_data):
        accepted = isinstance(auth_data, LoginPassword) and (
            auth_data.login == username.encode() and auth_data.password == password.encode()
        )
        return AuthResult(success=accepted, handled=False)

    server = _running_server(
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    server.client_ssl_context = ssl.create_default_context(cafile=str(cert_file))
    server.username, server.password = username, password
    try:
        yield server
    finally:
        server.stop()


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 and localhost, and its key, into `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(SMTP_HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory):
    """The portal tests' warehouse and documents, built once per session (portal_support)."""
    from portal_support import portal_world

    return portal_world(tmp_path_factory)


@pytest.fixture
def portal(world, tmp_path: Path, smtp_server: SmtpTestServer):
    """A portal on 127.0.0.1 over `world`, mailing through the SMTP test server."""
    from portal_support import smtp_settings, start_portal

    running = start_portal(lambda base: world.settings(
        tmp_path / "home", portal_base_url=base, **smtp_settings(smtp_server)))
    yield running
    running.stop()
