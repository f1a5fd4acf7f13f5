"""A real, throwaway Redis for tests, started from Debian's `redis-server` binary.

It listens on 127.0.0.1 on a port the OS picked, keeps nothing on disk (no RDB snapshots, no
append-only file) and works in a fresh temporary folder that is deleted afterwards. The
Celery tests use it as broker and result backend.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
_START_SECONDS = 30.0


class RedisUnavailableError(RuntimeError):
    """redis-server is missing or did not start."""


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    folder: Path

    def url(self, database: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _answers_ping(port: int) -> bool:
    """True once the server answers PING with +PONG (plain RESP, no client library)."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """Start redis-server on loopback, yield where it listens, stop it and delete its folder."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailableError(
            "`redis-server` is not on PATH; install it (Debian: apt-get install redis-server, "
            "or scripts/install-system-packages.sh) to run the Celery tests"
        )
    folder = Path(tempfile.mkdtemp(prefix="q2c-redis-"))
    port = _free_port()
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--daemonize", "no", "--protected-mode", "yes"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + _START_SECONDS
        while not _answers_ping(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RedisUnavailableError(
                    f"redis-server did not start on {HOST}:{port}: "
                    f"{(folder / 'server.log').read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.05)
        yield RedisServer(HOST, port, folder)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)
