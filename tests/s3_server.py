"""A real S3-compatible server for tests: moto's server mode on a loopback port, in a thread,
one per test process; each test gets a bucket of its own."""

from __future__ import annotations

import atexit
import logging
import secrets

import httpx
from moto.server import ThreadedMotoServer

from service.settings import S3Settings, Secret

_SERVERS: list[tuple[ThreadedMotoServer, str]] = []


def endpoint() -> str:
    """The server's base URL, started on first use."""
    if not _SERVERS:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        atexit.register(server.stop)
        _SERVERS.append((server, f"http://{host}:{port}"))
    return _SERVERS[0][1]


def new_bucket(prefix: str = "taskhook/assets") -> S3Settings:
    """A fresh, empty bucket on the server, as the settings would name it."""
    bucket = f"th-{secrets.token_hex(6)}"
    base = endpoint()
    httpx.put(f"{base}/{bucket}").raise_for_status()
    return S3Settings(
        bucket=bucket, endpoint_url=base, prefix=prefix, region="us-east-1",
        access_key_id=Secret("testing"), secret_access_key=Secret("s3-secret-never-shown"),
    )  # fmt: skip
