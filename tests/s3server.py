"""moto's standalone S3 server on 127.0.0.1, started once per test session.

The server is a real HTTP endpoint on a free port; tests talk to it through an ordinary
boto3 client, so nothing in boto3 or mltrail is patched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mltrail.artifacts.s3 import make_client


@dataclass(frozen=True)
class S3Server:
    """Where the test S3 server listens, and a bucket made for the session."""

    endpoint_url: str
    bucket: str
    region_name: str = "us-east-1"
    access_key_id: str = "mltrail-test"
    secret_access_key: str = "mltrail-test"

    def options(self) -> dict[str, str]:
        """Keyword arguments for `open_store` / `make_client`."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region_name,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        }

    def client(self) -> Any:
        """A fresh boto3 S3 client for this server."""
        return make_client(**self.options())

    def new_prefix(self) -> str:
        """A key prefix no other test uses."""
        return f"test-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Start moto's ThreadedMotoServer on 127.0.0.1 and a free port, with one bucket."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = S3Server(endpoint_url=f"http://{host}:{port}", bucket="mltrail-test")
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()
