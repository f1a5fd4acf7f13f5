"""A real, throwaway Postgres for tests, started from the machine's binaries.

The cluster lives in a fresh temporary folder, listens on 127.0.0.1 on a free port (and on
a unix socket in that folder), uses UTF-8 with the C.UTF-8 locale, and asks for a password
over TCP (scram-sha-256), so role and privilege tests log in the way a BI tool does.
Postgres refuses to run as root; when the tests run as root, the server runs as the
`postgres` system user, which owns the folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

HOST = "127.0.0.1"
SUPERUSER = "q2c_admin"


class PostgresUnavailableError(RuntimeError):
    """initdb or pg_ctl is missing or failed."""


@dataclass(frozen=True)
class PostgresServer:
    """Where a running test cluster listens and how its superuser logs in."""

    host: str
    port: int
    user: str
    password: str
    folder: Path

    def connect(self, dbname: str = "postgres", user: str | None = None,
                password: str | None = None):
        """A psycopg2 connection over TCP, as the superuser unless told otherwise."""
        return psycopg2.connect(
            host=self.host, port=self.port, dbname=dbname, user=user or self.user,
            password=self.password if password is None else password,
        )

    def create_database(self, name: str) -> None:
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'create database "{name}" template template0 '
                            "encoding 'UTF8' locale 'C.UTF-8'")
        finally:
            conn.close()

    def environment(self, dbname: str) -> dict[str, str]:
        """The Q2C_PG_* variables that point q2c and the dbt `postgres` target here."""
        return {
            "Q2C_PG_HOST": self.host, "Q2C_PG_PORT": str(self.port),
            "Q2C_PG_USER": self.user, "Q2C_PG_PASSWORD": self.password,
            "Q2C_PG_DBNAME": dbname,
        }


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PostgresUnavailableError(
            f"`{name}` is not on PATH; install the Postgres server binaries "
            "(Debian: apt-get install postgresql) to run the Postgres tests"
        )
    return found


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(_as_server_user(command), capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise PostgresUnavailableError(f"{what} failed: {result.stdout}{result.stderr}")


@contextmanager
def running_postgres(password: str = "q2c-test-secret") -> Iterator[PostgresServer]:
    """Start a cluster, yield it, and stop and delete it afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="q2c-pg-"))
    folder.chmod(0o755)
    data, sockets, password_file = folder / "data", folder / "socket", folder / "password"
    sockets.mkdir()
    password_file.write_text(password + "\n")
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (folder, sockets, password_file):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    started = False
    try:
        _run([_binary("initdb"), "-D", str(data), "-U", SUPERUSER,
              f"--pwfile={password_file}", "--auth-local=trust",
              "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
              "--no-sync"], "initdb")
        port = _free_port()
        options = (f"-c listen_addresses={HOST} -p {port} -k {sockets} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        _run([_binary("pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
              "-t", "60", "-o", options, "start"], "pg_ctl start")
        started = True
        yield PostgresServer(HOST, port, SUPERUSER, password, folder)
    finally:
        if started:
            _run([_binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                 "pg_ctl stop")
        shutil.rmtree(folder, ignore_errors=True)
