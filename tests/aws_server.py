"""An AWS-compatible server on loopback for tests: moto's ThreadedMotoServer.

One server runs per test session on 127.0.0.1 with a port picked by the OS; every test that
asks for `aws` starts from empty services (S3 buckets, SES identities and sent mail, SQS
queues). The session points the AWS SDK at the server through the environment as well
(`AWS_ENDPOINT_URL`, dummy credentials, no instance metadata), so a client built anywhere
in the code under test without an explicit endpoint still talks to loopback and never to
AWS.

Use from a test module or conftest with `from aws_server import aws, aws_server`.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

AWS_HOST = "127.0.0.1"
AWS_REGION = "eu-central-1"
DUMMY_KEY_ID = "testing"
DUMMY_SECRET = "testing"

_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
    "AWS_DEFAULT_REGION": AWS_REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/q2c-tests/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/q2c-tests/config",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
_REMOVED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "HTTP_PROXY",
            "HTTPS_PROXY", "http_proxy", "https_proxy")


@dataclass(frozen=True)
class AwsTestServer:
    """A running moto server: where it listens, clients for it and what it holds."""

    endpoint_url: str
    region: str = AWS_REGION

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on this server, with no retries."""
        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=DUMMY_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET,
            config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
        )

    def state(self) -> dict[str, Any]:
        """Everything moto holds, by service, as its `/moto-api/data.json` shows it."""
        with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/data.json") as reply:
            return json.load(reply)

    def sent_emails(self) -> list[dict[str, Any]]:
        """Raw messages SES accepted: `id`, `source`, `destinations`, `raw_data`."""
        return list(self.state().get("ses", {}).get("RawMessage", []))

    def reset(self) -> None:
        """Forget every resource and message on the server."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request) as reply:
            reply.read()


class _SharedServer:
    """One moto server per process, however many modules import the fixtures.

    Each module that imports `aws_server` gets its own session fixture from pytest; they
    share this server (moto keeps its state per process anyway), and the last one to
    finish stops it and restores the environment.
    """

    def __init__(self) -> None:
        self.users = 0
        self.server: ThreadedMotoServer | None = None
        self.patch = pytest.MonkeyPatch()
        self.handle: AwsTestServer | None = None

    def acquire(self) -> AwsTestServer:
        if self.handle is None:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            self.server = ThreadedMotoServer(ip_address=AWS_HOST, port=0, verbose=False)
            self.server.start()
            host, port = self.server.get_host_and_port()
            self.handle = AwsTestServer(endpoint_url=f"http://{host}:{port}")
            for name in _REMOVED:
                self.patch.delenv(name, raising=False)
            environment = {**_ENVIRONMENT, "AWS_ENDPOINT_URL": self.handle.endpoint_url}
            for name, value in environment.items():
                self.patch.setenv(name, value)
        self.users += 1
        return self.handle

    def release(self) -> None:
        self.users -= 1
        if self.users == 0 and self.server is not None:
            self.patch.undo()
            self.server.stop()
            self.server, self.handle = None, None


_SHARED = _SharedServer()


@pytest.fixture(scope="session")
def aws_server() -> Iterator[AwsTestServer]:
    """The session's moto server; prefer `aws`, which also empties it for each test."""
    server = _SHARED.acquire()
    try:
        yield server
    finally:
        _SHARED.release()


@pytest.fixture
def aws(aws_server: AwsTestServer) -> AwsTestServer:
    """The moto server, emptied before the test."""
    aws_server.reset()
    return aws_server
