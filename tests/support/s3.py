"""A real S3-compatible HTTP server for the tests: moto in server mode, on loopback.

It runs in a thread of the test process (its state lives in moto's in-memory backends, which
survive a stop and a restart on the same port, as a real S3 keeps its buckets through an
outage). ``env()`` is what the service needs to use it.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

from tests.support.service import free_port

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key-0123456789"
REGION = "us-east-1"


class S3Server:
    """One moto S3 server on 127.0.0.1; buckets are made per test."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint_url(self) -> str:
        """Where the S3 API answers."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers."""
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=1):  # noqa: S310
                    return
            except OSError:
                assert time.monotonic() < deadline, "moto never answered"
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop answering (connections are refused until ``start``)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def new_bucket(self) -> str:
        """A fresh, empty bucket."""
        import boto3

        name = f"kg-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        client.create_bucket(Bucket=name)
        return name

    def env(self, bucket: str, prefix: str = "results") -> dict[str, str]:
        """The service's environment for ``s3://bucket/prefix`` on this server."""
        return {
            "STORAGE_URL": f"s3://{bucket}/{prefix}",
            "S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """A started server, stopped afterwards."""
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()
