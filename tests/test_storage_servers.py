"""Storage sinks through the real boto3 and google-cloud-storage clients, against an S3 server
(moto) and a GCS emulator started on loopback; fixtures here are shared by the fleet tests."""

from __future__ import annotations

import http.client
import http.server
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flanscan._storage import LocalSink, RetryPolicy, StorageError, retrying
from flanscan._storage._gcs import GcsSink
from flanscan._storage._s3 import S3Sink

BUCKET = "flan-test"


@dataclass
class CloudEnv:
    """A storage server on loopback and what a client needs to reach it."""

    scheme: str  # "s3" | "gs"
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str = BUCKET
    secrets: tuple[str, ...] = ()  # credential values that must never appear in output
    stop: Callable[[], None] = field(default=lambda: None)

    def url(self, prefix: str = "") -> str:
        return f"{self.scheme}://{self.bucket}" + (f"/{prefix}" if prefix else "")

    def sink(self, prefix: str = "") -> S3Sink | GcsSink:
        return S3Sink(self.bucket, prefix) if self.scheme == "s3" else GcsSink(self.bucket, prefix)


def fake_aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> tuple[str, str]:
    """Fake credentials in the environment (never the machine's), the endpoint, no IMDS."""
    key_id = "AKIAFLANTEST" + secrets.token_hex(4).upper()
    secret = "flan-secret-" + secrets.token_hex(16)
    for name, value in {
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return key_id, secret


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudEnv]:
    """moto's S3 server on 127.0.0.1 with bucket flan-test, used through boto3."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    key_id, secret = fake_aws_env(monkeypatch, endpoint)
    import boto3

    # moto keeps one in-memory store per process: a fresh bucket keeps tests apart.
    bucket = f"{BUCKET}-{secrets.token_hex(4)}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    env = CloudEnv("s3", endpoint, bucket, secrets=(key_id, secret), stop=server.stop)
    try:
        yield env
    finally:
        server.stop()


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudEnv]:
    """gcp-storage-emulator on 127.0.0.1 with bucket flan-test, used through
    google-cloud-storage (anonymous credentials, as against the real emulator)."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    port = server._api._httpd.server_address[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "flan-test")
    # Never the machine's own credentials (and no metadata-server probing).
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/flan-test.json")
    env = CloudEnv("gs", endpoint, stop=server.stop)
    try:
        yield env
    finally:
        server.stop()


@pytest.fixture(params=["s3", "gs"])
def cloud(request: pytest.FixtureRequest) -> CloudEnv:
    """Each of the two object stores in turn."""
    env: CloudEnv = request.getfixturevalue("s3" if request.param == "s3" else "gcs")
    return env


class FaultProxy:
    """An HTTP proxy on loopback in front of a storage server that answers 503 to the requests
    `fail(method, path)` picks, and counts them (a store that breaks mid-run)."""

    def __init__(self, upstream: str, fail: Callable[[str, str], bool]) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.failed: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if fail(self.command, self.path):
                    proxy.failed.append(f"{self.command} {self.path}")
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- tests


def _roundtrip(sink: S3Sink | GcsSink | LocalSink, tmp_path: Path) -> None:
    data = secrets.token_bytes(3000)
    src = tmp_path / "scan-01.xml"
    src.write_bytes(data)
    sink.put_file(src, "run-1/shard-0-of-2/xml/scan-01.xml")
    sink.put_file(src, "run-1/shard-1-of-2/xml/scan-01.xml")
    sink.put_file(src, "run-2/run.json")
    assert sink.list() == [
        "run-1/shard-0-of-2/xml/scan-01.xml",
        "run-1/shard-1-of-2/xml/scan-01.xml",
        "run-2/run.json",
    ]
    assert sink.list("run-1/shard-1-of-2/") == ["run-1/shard-1-of-2/xml/scan-01.xml"]
    back = tmp_path / "back" / "x.xml"
    sink.get_file("run-1/shard-1-of-2/xml/scan-01.xml", back)
    assert back.read_bytes() == data
    sink.delete(["run-1/shard-0-of-2/xml/scan-01.xml", "run-1/never-there"])
    assert "run-1/shard-0-of-2/xml/scan-01.xml" not in sink.list()


def test_sink_roundtrip_through_the_real_client(cloud: CloudEnv, tmp_path: Path) -> None:
    _roundtrip(cloud.sink("fleet/prefix"), tmp_path)
    # The prefix is honoured: a sink without it sees the objects below fleet/prefix/.
    assert "fleet/prefix/run-2/run.json" in cloud.sink().list()


def test_local_sink_roundtrip_and_no_traversal(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "store")
    _roundtrip(sink, tmp_path)
    with pytest.raises(StorageError) as err:
        sink.put_file(tmp_path / "scan-01.xml", "../outside.xml")
    assert err.value.permanent
    assert not (tmp_path / "outside.xml").exists()


def test_missing_bucket_is_a_permanent_error(cloud: CloudEnv, tmp_path: Path) -> None:
    src = tmp_path / "a.json"
    src.write_text("{}")
    sink = S3Sink("no-such-bucket") if cloud.scheme == "s3" else GcsSink("no-such-bucket")
    calls = []

    def put() -> None:
        calls.append(1)
        sink.put_file(src, "a.json")

    with pytest.raises(StorageError) as err:
        retrying(put, RetryPolicy((0.01, 0.01, 0.01)))
    assert err.value.permanent
    assert len(calls) == 1  # not retried: retrying cannot create the bucket
    assert "no-such-bucket" in str(err.value)


def test_stopped_server_is_retried_then_reported(cloud: CloudEnv, tmp_path: Path) -> None:
    src = tmp_path / "a.json"
    src.write_text("{}")
    sink = cloud.sink()
    sink.put_file(src, "before.json")  # the server works ...
    cloud.stop()  # ... until it goes away
    retried: list[int] = []
    with pytest.raises(StorageError) as err:
        retrying(
            lambda: sink.put_file(src, "after.json"),
            RetryPolicy((0.01, 0.01)),
            on_retry=lambda attempt, exc: retried.append(attempt),
        )
    assert not err.value.permanent
    assert retried == [1, 2]  # three attempts in all
    message = str(err.value)
    assert "after.json" in message and ("refused" in message or "connect" in message)
    assert src.read_text() == "{}"  # the local file is untouched
