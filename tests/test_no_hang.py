"""No hang (issue 13, item 5): every network call has a total deadline (a loopback server that
trickles one byte at a time never holds a webhook, an upload or a feed download beyond it), and
Nmap workers die with flan, even after `kill -9`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_notify import runs

from flanscan._errors import VulnDbError
from flanscan._notify import RetryPolicy, send_alerts
from flanscan._storage import StorageError
from flanscan._storage._s3 import S3Sink

FLAN = [sys.executable, "-m", "flanscan"]
DEADLINE = "2"  # seconds: the total deadline the tests configure
WAIT = 60.0  # how long a test waits for the call to return at all (30 x the deadline)


class Trickler:
    """An HTTP server on loopback that answers every request with one byte every 0.3 s, for
    ever: each read gets data well within any per-read timeout."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Pad: " + b"a" * 10_000
        with conn:
            for byte in head:
                if self.stop.wait(0.3):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def trickler() -> Iterator[Trickler]:
    server = Trickler()
    try:
        yield server
    finally:
        server.close()


def _within(seconds: float, fn: object) -> object:
    """Run `fn` on a thread; the test fails (instead of hanging) when it has not returned."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()  # type: ignore[operator]
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the call was still running after {seconds:g} s"
    return box


def test_trickling_webhook_ends_at_the_total_deadline(
    trickler: Trickler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAN_NOTIFY_TIMEOUT", DEADLINE)
    monkeypatch.setenv("FLAN_NOTIFY_RETRY_DELAYS", "0.01")
    assert RetryPolicy.from_env().timeout == float(DEADLINE)
    report, changes = runs()
    box = _within(WAIT, lambda: send_alerts([trickler.url + "/hook"], report, changes))
    assert "error" not in box, box
    (failure,) = box["value"]  # type: ignore[misc]
    assert failure.attempts == 2 and "total deadline" in failure.error
    assert trickler.connections == 2


def test_trickling_storage_endpoint_ends_at_the_total_deadline(
    trickler: Trickler, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIAFLANTEST", "AWS_SECRET_ACCESS_KEY": "x",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": trickler.url,
                        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                        "FLAN_STORAGE_TIMEOUT": DEADLINE}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    src = tmp_path / "a.json"
    src.write_text("{}")
    box = _within(WAIT, lambda: S3Sink("bucket").put_file(src, "run/a.json"))
    assert isinstance(box.get("error"), StorageError), box
    assert "total deadline" in str(box["error"])


def test_trickling_feed_server_ends_at_the_total_deadline(
    trickler: Trickler, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flanscan._vulndb._download import HttpFetcher, make_client

    monkeypatch.setenv("FLAN_DOWNLOAD_TIMEOUT", DEADLINE)
    with make_client(10.0) as client:
        box = _within(WAIT, lambda: HttpFetcher(client).get_text(trickler.url + "/x.meta"))
    assert isinstance(box.get("error"), VulnDbError), box
    assert "total deadline" in str(box["error"])


# --------------------------------------------------------------------------- kill -9


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(predicate: object, seconds: float) -> bool:
    done = threading.Event()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        done.wait(0.1)
    return False


def test_nmap_dies_with_flan_after_kill_9(tmp_path: Path) -> None:
    # A slow scan of loopback only: every port at 2 packets a second would take hours.
    flan = subprocess.Popen(
        [*FLAN, "scan", "127.0.0.1", "--no-db", "--format", "json", "--output-dir",
         str(tmp_path / "run"), "--", "-p", "1-65535", "--max-rate", "2"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    nmaps: list[int] = []
    try:

        def nmap_started() -> bool:
            # The scanning workers (`-oX`), not the short `nmap --version` probe.
            nmaps[:] = [p for p in _children(flan.pid) if b"-oX" in _cmdline(p)]
            return bool(nmaps)

        assert _wait(nmap_started, 60), "no nmap started"
        os.kill(flan.pid, signal.SIGKILL)
        flan.wait(30)
        assert _wait(lambda: not any(_alive(p) for p in nmaps), 30), (
            f"nmap {nmaps} still running after flan was killed"
        )
    finally:
        if flan.poll() is None:
            flan.kill()
            flan.wait()
        for pid in nmaps:  # only the processes this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
