"""SFTP for the EDI channel: drop documents on a trading partner's server, read what comes back.

Many X12 trading partners take invoices only on their own SFTP server and put their 997
acknowledgements there too. A target reads `sftp://user@host:port/path` (port 22 when
left out; the path as the server shows it to that user, e.g. `/outbound`).

Trust is never implied. q2c logs in with a private key file only (no password, no agent,
no keys found lying around), and the server's host key must already be in a known_hosts
file: an unknown key or a key that changed is refused and nothing is sent, because either
means q2c cannot tell the partner's server from someone in between. The message gives the
offered key's fingerprint so a person can confirm it with the partner and add it.

A file is written under a temporary dot-name in the same folder and then renamed over its
final name with `posix-rename@openssh.com`, which replaces an existing file in one step, so
the partner's pickup never sees half a file and a resend overwrites the same name. Every
network wait is bounded by the timeout.

Failures are split by whose fault they are (`q2c.delivery.errors`): no server listening,
the host key refused or our key refused is the channel's (`ChannelUnavailableError`: every
invoice would fail the same way); permission denied or a missing folder on the server is
`PermanentDeliveryError`; a connection that breaks off after login is
`TransientDeliveryError`, retried with the same names.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import posixpath
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paramiko

from q2c.delivery.errors import (
    ChannelUnavailableError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

logger = logging.getLogger(__name__)

SCHEME = "sftp://"
DEFAULT_PORT = 22
DEFAULT_TIMEOUT = 30.0
TEMP_SUFFIX = ".part"
FORM = "sftp://user@host:port/path"


@dataclass(frozen=True)
class SftpLocation:
    """Where on which server: `sftp://user@host:port/path`, parsed."""

    user: str
    host: str
    port: int
    path: str

    @property
    def server(self) -> str:
        return f"SFTP server {self.host}:{self.port}"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{SCHEME}{self.user}@{host}:{self.port}{self.path}"

    def remote(self, name: str) -> str:
        """The server path of file `name` in this folder."""
        return posixpath.join(self.path or ".", name)


def is_sftp_target(target: str) -> bool:
    return target.strip().lower().startswith(SCHEME)


def parse_sftp_target(target: str) -> SftpLocation:
    """Read `sftp://user@host:port/path`.

    Raises:
        ValueError: No user or host, a port outside 1..65535, a password in the URL (q2c
            logs in with a key file only), a control character anywhere, or a `..` path
            segment (the folder must be named as it is, not climbed out of); the message
            shows the expected form.
    """
    text = target.strip()
    if not is_sftp_target(text):
        raise ValueError(f"{target!r} is not an SFTP target: use {FORM}")
    _refuse_control_characters(target, text)
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"SFTP target {target!r} has a bad port: use {FORM}") from exc
    if port is None:
        port = DEFAULT_PORT
    elif not 1 <= port <= 65535:
        raise ValueError(f"SFTP target {target!r} has a bad port {port}: use a port from 1 "
                         f"to 65535, as in {FORM}")
    if parts.password is not None:
        raise ValueError(f"SFTP target {parts.hostname} carries a password: q2c logs in with "
                         "a private key file only; remove the password from the URL")
    if not parts.username or not parts.hostname:
        raise ValueError(f"SFTP target {target!r} names no user or no host: use {FORM}")
    path, user = unquote(parts.path), unquote(parts.username)
    _refuse_control_characters(target, path + user + parts.hostname)
    if ".." in path.split("/"):
        raise ValueError(f"SFTP target {target!r} has a '..' segment in its path: name the "
                         f"partner's folder directly, as in {FORM}")
    return SftpLocation(user=user, host=parts.hostname, port=port,
                        path=path.rstrip("/") or path)


def _refuse_control_characters(target: str, text: str) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError(f"SFTP target {target!r} holds a control character (such as NUL or "
                         f"a line break); use {FORM} with printable characters only")


class SftpClient:
    """One partner folder on an SFTP server, reached with a key file.

    A connection is opened per `upload` or `session` and closed after it, so a run never
    reuses a connection the server dropped while q2c was busy elsewhere.

    Args:
        target: `sftp://user@host:port/path`.
        key_path: The private key file q2c logs in with (OpenSSH or PEM; not encrypted).
        known_hosts_path: A known_hosts file holding the server's host key (for a port
            other than 22 the line starts with `[host]:port`).
        timeout: Seconds any one network step may take: connecting, the SSH handshake,
            the login and each SFTP request.
    """

    def __init__(
        self,
        target: str | SftpLocation,
        *,
        key_path: str | Path,
        known_hosts_path: str | Path,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.location = target if isinstance(target, SftpLocation) else parse_sftp_target(
            target)
        self.key_path = Path(key_path)
        self.known_hosts_path = Path(known_hosts_path)
        self.timeout = timeout

    def upload(self, files: Sequence[tuple[str, bytes]], what: str) -> list[str]:
        """Write each (name, bytes) into the folder, in order, each under a temporary name
        renamed into place; return the server paths.

        `what` names the delivery in error messages ("invoice INV-1 for ACME").
        """
        with self.session(what) as session:
            return [session.write(name, data) for name, data in files]

    @contextlib.contextmanager
    def session(self, what: str) -> Iterator[SftpSession]:
        """An open SFTP session on the folder, closed afterwards."""
        client, sftp = self._connect(what)
        try:
            yield SftpSession(self.location, sftp, what)
        finally:
            with contextlib.suppress(Exception):
                sftp.close()
            client.close()

    def _connect(self, what: str) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
        where = self.location
        key = self._load_key(what)
        client = paramiko.SSHClient()
        try:
            # Loaded as plain data, never as the client's own file: nothing is written back.
            client.get_host_keys().load(str(self.known_hosts_path))
        except OSError as exc:
            client.close()
            raise ChannelUnavailableError(
                f"{what}: cannot read the known_hosts file {self.known_hosts_path} "
                f"({exc.strerror or exc}) to check {where.server}: create it with the "
                "partner's host key (ssh-keyscan, then confirm the fingerprint)"
            ) from exc
        client.set_missing_host_key_policy(_RefuseUnknownHostKey())
        try:
            client.connect(
                hostname=where.host, port=where.port, username=where.user, pkey=key,
                timeout=self.timeout, banner_timeout=self.timeout, auth_timeout=self.timeout,
                channel_timeout=self.timeout, allow_agent=False, look_for_keys=False,
            )
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(self.timeout)
        except BaseException as exc:
            # The transport thread may hold the real cause (no SSH banner, a failed key
            # exchange) behind a vaguer error raised in this thread.
            transport = client.get_transport()
            cause = transport.get_exception() if transport is not None else None
            client.close()
            if isinstance(exc, Exception):
                if isinstance(cause, Exception) and not isinstance(
                        exc, paramiko.BadHostKeyException | paramiko.AuthenticationException
                        | _UnknownHostKey):
                    exc = cause
                raise self._connect_error(exc, what) from exc
            raise
        logger.debug("%s: connected to %s as %s", what, where.server, where.user)
        return client, sftp

    def _load_key(self, what: str) -> paramiko.PKey:
        try:
            return paramiko.PKey.from_path(self.key_path)
        except paramiko.PasswordRequiredException as exc:
            raise ChannelUnavailableError(
                f"{what}: the SFTP key {self.key_path} is encrypted; q2c runs unattended "
                "and cannot type a passphrase: use a key without one, readable only by q2c"
            ) from exc
        except (OSError, paramiko.SSHException, ValueError) as exc:
            detail = getattr(exc, "strerror", None) or exc
            raise ChannelUnavailableError(
                f"{what}: cannot load the SFTP private key {self.key_path} ({detail}): "
                "check the key path setting"
            ) from exc

    def _connect_error(self, exc: Exception, what: str) -> ChannelUnavailableError:
        where, known = self.location, self.known_hosts_path
        if isinstance(exc, _UnknownHostKey):
            return ChannelUnavailableError(
                f"{what}: {where.server} offered host key {exc.describe()}, which is not in "
                f"{known}; q2c never trusts a host key on first sight and sent nothing. "
                "Confirm the fingerprint with the partner, then add the key to that file"
            )
        if isinstance(exc, paramiko.BadHostKeyException):
            return ChannelUnavailableError(
                f"{what}: {where.server} offered host key {_describe_key(exc.key)}, not the "
                f"one recorded in {known}; the server was replaced or someone is in between, "
                "so nothing was sent. Confirm the new key with the partner before changing "
                "the known_hosts line"
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return ChannelUnavailableError(
                f"{what}: {where.server} refused the key {self.key_path} for user "
                f"{where.user!r} ({exc}): check that the partner authorized its public key "
                "for this user, and the user in the EDI target"
            )
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            detail = "; ".join(f"{address[0]}:{address[1]}: {_detail(error)}"
                               for address, error in exc.errors.items())
        elif str(exc) == "No existing session":
            # paramiko's word for a handshake that did not finish within the timeout.
            detail = f"no SSH session came up within {self.timeout:g}s"
        else:
            detail = _detail(exc)
        return ChannelUnavailableError(
            f"{what}: cannot reach {where.server} ({detail}): check the host and port of "
            "the EDI target and that the server is up"
        )


class SftpSession:
    """Files in one folder of an open SFTP session. Errors come out classified."""

    def __init__(self, location: SftpLocation, sftp: paramiko.SFTPClient, what: str) -> None:
        self.location, self.sftp, self.what = location, sftp, what

    def write(self, name: str, data: bytes) -> str:
        """Write `data` to `name` through a temporary dot-name and a POSIX rename."""
        final = self.location.remote(name)
        temp = self.location.remote(f".{name}{TEMP_SUFFIX}")
        with self._classified(f"writing {final}"):
            self.sftp.putfo(io.BytesIO(data), temp, file_size=len(data), confirm=True)
            self._rename(temp, final)
        return final

    def list_files(self) -> list[str]:
        """Names of the regular files directly in the folder, oldest first (then by name);
        dot-files (uploads under way) are left out."""
        with self._classified(f"listing {self.location.path or '.'}"):
            entries = self.sftp.listdir_attr(self.location.path or ".")
        files = [entry for entry in entries
                 if entry.st_mode is not None and stat.S_ISREG(entry.st_mode)
                 and not entry.filename.startswith(".")]
        return [entry.filename for entry in sorted(
            files, key=lambda entry: (entry.st_mtime or 0, entry.filename))]

    def read(self, name: str) -> bytes:
        path = self.location.remote(name)
        buffer = io.BytesIO()
        with self._classified(f"reading {path}"):
            self.sftp.getfo(path, buffer)
        return buffer.getvalue()

    def move(self, name: str, folder: str, new_name: str | None = None) -> str:
        """Move file `name` into the sub-folder `folder` (created when missing), as
        `new_name` (default: the same name), replacing a file of that name there; return
        its new path."""
        source = self.location.remote(name)
        target_folder = self.location.remote(folder)
        target = posixpath.join(target_folder, new_name or name)
        with self._classified(f"moving {source} to {target_folder}"):
            try:
                self.sftp.stat(target_folder)
            except FileNotFoundError:
                self.sftp.mkdir(target_folder)
            self._rename(source, target)
        return target

    def _rename(self, source: str, target: str) -> None:
        try:
            self.sftp.posix_rename(source, target)
        except OSError as exc:
            if exc.errno is None and "unsupported" in str(exc).lower():
                raise ChannelUnavailableError(
                    f"{self.what}: {self.location.server} does not support "
                    "posix-rename@openssh.com, so a file cannot replace another in one "
                    "step: ask the partner for an OpenSSH-compatible server"
                ) from exc
            raise

    @contextlib.contextmanager
    def _classified(self, step: str) -> Iterator[None]:
        server = self.location.server
        try:
            yield
        except DeliveryError:
            raise
        except PermissionError as exc:
            raise PermanentDeliveryError(
                f"{self.what}: {server} denied permission for {step} ({_detail(exc)}): ask "
                f"the partner to give user {self.location.user!r} access to "
                f"{self.location.path or 'the login folder'}, or fix the path in the target"
            ) from exc
        except FileNotFoundError as exc:
            raise PermanentDeliveryError(
                f"{self.what}: {server} has no such file or folder for {step} "
                f"({_detail(exc)}): check the path of the target {self.location.url}"
            ) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransientDeliveryError(
                f"{self.what}: the connection to {server} broke off while {step} "
                f"({_detail(exc)}); nothing is taken as delivered and the same names are "
                "written again on the next try"
            ) from exc


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"host key of {hostname} is not known")
        self.key = key

    def describe(self) -> str:
        return _describe_key(self.key)


class _RefuseUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Refuse a server whose host key is not in known_hosts; never add it."""

    def missing_host_key(self, client, hostname, key) -> None:
        raise _UnknownHostKey(hostname, key)


def _describe_key(key: paramiko.PKey) -> str:
    """`ssh-ed25519 SHA256:...`, the fingerprint form OpenSSH prints."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


def _detail(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
