"""A real SFTP server on loopback for tests: asyncssh, in a thread, chrooted to a tmp folder.

It listens on 127.0.0.1 with a port picked by the OS, presents a host key generated for the
test, and lets in one user with one generated client key (no passwords). What the client
sees as `/` is the server's `root` folder, so tests check uploads by reading files there.

Faults a partner's server can have are switched on per test:

- `read_only`: folders (as the client sees them, e.g. `/outbound`) where the server answers
  every write, rename, delete or mkdir with SSH_FX_PERMISSION_DENIED. Tests run as root,
  for whom file modes mean nothing, so the server enforces this itself.
- `drop_writes`: the server cuts the SSH connection when the next that many writes arrive.

Use from a test module with `from sftp_server import sftp_server_fixture`; the fixture,
named `sftp_server`, writes the client key and a known_hosts file that trusts the server
under `tmp_path`.
"""

from __future__ import annotations

import asyncio
import posixpath
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

SFTP_HOST = "127.0.0.1"
SFTP_USER = "q2c"
_WRITE_FLAGS = (asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_APPEND
                | asyncssh.FXF_TRUNC)


@dataclass
class _Faults:
    read_only: set[str] = field(default_factory=set)
    drop_writes: int = 0
    dropped: int = 0
    renamed: list[tuple[str, str]] = field(default_factory=list)


class _PartnerServer(asyncssh.SSHServer):
    """Public-key login for one user with one key; nothing else is accepted."""

    def __init__(self, user: str, key: asyncssh.SSHKey) -> None:
        self.user, self.key = user, key

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self.user and key.public_data == self.key.public_data


class _PartnerSftp(asyncssh.SFTPServer):
    """The stock chrooted SFTP server plus the switched-on faults."""

    def __init__(self, chan, *, root: Path, faults: _Faults) -> None:
        super().__init__(chan, chroot=str(root).encode())
        self.faults = faults

    def _refuse_in_read_only(self, *paths: bytes) -> None:
        for path in paths:
            folder = posixpath.dirname(posixpath.normpath("/" + path.decode().lstrip("/")))
            if folder in self.faults.read_only:
                raise asyncssh.SFTPPermissionDenied(f"{folder} is read-only for this user")

    def open(self, path, pflags, attrs):
        if pflags & _WRITE_FLAGS:
            self._refuse_in_read_only(path)
        return super().open(path, pflags, attrs)

    def write(self, file_obj, offset, data):
        if self.faults.drop_writes > 0:
            self.faults.drop_writes -= 1
            self.faults.dropped += 1
            self.connection.abort()
            raise asyncssh.SFTPConnectionLost("connection cut by the test server")
        return super().write(file_obj, offset, data)

    def posix_rename(self, oldpath, newpath):
        self._refuse_in_read_only(oldpath, newpath)
        result = super().posix_rename(oldpath, newpath)
        self.faults.renamed.append((oldpath.decode(), newpath.decode()))
        return result

    def rename(self, oldpath, newpath):
        self._refuse_in_read_only(oldpath, newpath)
        return super().rename(oldpath, newpath)

    def remove(self, path):
        self._refuse_in_read_only(path)
        return super().remove(path)

    def mkdir(self, path, attrs):
        self._refuse_in_read_only(path)
        return super().mkdir(path, attrs)


@dataclass
class SftpTestServer:
    """A running SFTP server and the files a client needs to reach it.

    Attributes:
        root: The folder the client sees as `/`.
        port: Where it listens on 127.0.0.1.
        host_key: The server's host key.
        key_path: The authorized client's private key (OpenSSH format).
        known_hosts_path: A known_hosts file with the server's host key for this port.
    """

    root: Path
    port: int
    host_key: asyncssh.SSHKey
    key_path: Path
    known_hosts_path: Path
    faults: _Faults
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _acceptor: asyncssh.SSHAcceptor | None = None

    @property
    def host(self) -> str:
        return SFTP_HOST

    @property
    def user(self) -> str:
        return SFTP_USER

    def url(self, path: str = "/outbound", *, user: str = SFTP_USER) -> str:
        return f"sftp://{user}@{SFTP_HOST}:{self.port}{path}"

    def folder(self, path: str) -> Path:
        """The server-side folder the client sees as `path`, created when missing."""
        folder = self.root / path.strip("/")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def read_only(self, path: str) -> None:
        self.faults.read_only.add("/" + path.strip("/"))

    def drop_next_writes(self, count: int = 1) -> None:
        self.faults.drop_writes = count

    @property
    def dropped(self) -> int:
        return self.faults.dropped

    @property
    def renamed(self) -> list[tuple[str, str]]:
        """Every POSIX rename the server carried out, in order, as (old, new) paths."""
        return self.faults.renamed

    def write_known_hosts(self, path: Path, key: asyncssh.SSHKey | None = None) -> Path:
        """A known_hosts file naming `key` (the server's own by default) for this server."""
        public = (key or self.host_key).export_public_key("openssh").decode().split()
        path.write_text(f"[{SFTP_HOST}]:{self.port} {public[0]} {public[1]}\n")
        return path

    def stop(self) -> None:
        if self._acceptor is not None:
            acceptor, self._acceptor = self._acceptor, None

            async def close() -> None:
                acceptor.close()
                await acceptor.wait_closed()

            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=30)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


def start_sftp_server(folder: Path) -> SftpTestServer:
    """Start a server chrooted to `folder`/root; keys and known_hosts go in `folder`."""
    root = folder / "root"
    root.mkdir(parents=True, exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = folder / "q2c_sftp_key"
    client_key.write_private_key(str(key_path), "openssh")
    key_path.chmod(0o600)
    faults = _Faults()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sftp-test-server", daemon=True)
    thread.start()

    async def listen() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            SFTP_HOST, 0, server_host_keys=[host_key],
            server_factory=lambda: _PartnerServer(SFTP_USER, client_key),
            sftp_factory=lambda chan: _PartnerSftp(chan, root=root, faults=faults),
            allow_scp=False,
        )

    acceptor = asyncio.run_coroutine_threadsafe(listen(), loop).result(timeout=30)
    server = SftpTestServer(
        root=root, port=acceptor.get_port(), host_key=host_key, key_path=key_path,
        known_hosts_path=folder / "known_hosts", faults=faults, _loop=loop,
        _thread=thread, _acceptor=acceptor,
    )
    server.write_known_hosts(server.known_hosts_path)
    return server


@pytest.fixture(name="sftp_server")
def sftp_server_fixture(tmp_path: Path) -> Iterator[SftpTestServer]:
    """An SFTP server on loopback with `/outbound` and `/inbound` folders."""
    server = start_sftp_server(tmp_path / "sftp")
    server.folder("/outbound")
    server.folder("/inbound")
    try:
        yield server
    finally:
        server.stop()
