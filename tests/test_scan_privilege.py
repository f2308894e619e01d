"""Raw packets or a connect scan, decided by what the kernel will allow (flanscan._scan.privilege).

Run for real as user `nobody` under `setpriv`, which sets the capability bounding set and
no_new_privs exactly as a container runtime does for a pod: Nmap carrying `cap_net_raw+ep` (as
in the image) SYN-scans a loopback service when NET_RAW is in the bounding set; without it the
kernel refuses to execute that Nmap (EPERM) and flan runs the capability-free copy with a connect
scan; with no_new_privs the capability is ignored and flan falls back instead of failing.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flanscan._scan.privilege import CAP_NET_RAW, file_capabilities, read_process_caps

REPO = Path(__file__).resolve().parent.parent

needs_root_tools = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("setcap") is None,
    reason="needs root, setpriv (util-linux) and setcap (libcap2-bin)",
)


def test_process_caps_are_read_from_proc(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(
        "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n"
        "CapEff:\t0000000000000000\nCapBnd:\t0000000000002000\nCapAmb:\t0000000000000000\n"
        "NoNewPrivs:\t1\n"
    )
    caps = read_process_caps(status)
    assert caps is not None and caps.no_new_privs
    assert caps.has("bounding", CAP_NET_RAW) and not caps.has("effective", CAP_NET_RAW)
    assert read_process_caps(tmp_path / "missing") is None
    own = read_process_caps()
    assert own is not None
    expected = (Path("/proc/self/status").read_text().split("NoNewPrivs:")[1].split()[0]) == "1"
    assert own.no_new_privs is expected


@needs_root_tools
def test_file_capability_is_read_from_the_xattr(tmp_path: Path) -> None:
    nmap = tmp_path / "nmap"
    shutil.copy(shutil.which("nmap") or "/usr/bin/nmap", nmap)
    assert file_capabilities(str(nmap)) == 0
    subprocess.run(["setcap", "cap_net_raw+ep", str(nmap)], check=True)
    assert file_capabilities(str(nmap)) == 1 << CAP_NET_RAW


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Sandbox:
    base: Path  # world-readable: `nobody` runs from here
    port: int  # a TCP service on 127.0.0.1

    def flan(
        self, bounding: str, *, no_new_privs: bool = False, copy: bool = True, run: str = "run"
    ) -> subprocess.CompletedProcess[str]:
        """`flan scan 127.0.0.1` as nobody with only `bounding` capabilities (setpriv syntax)."""
        bindir = self.base / ("bin" if copy else "bin-nocopy")
        site = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
        env = {
            "PATH": f"{bindir}:/usr/bin:/bin",
            "NMAP_PRIVILEGED": "1",  # as in the image
            "HOME": str(self.base / "work"),
            "PYTHONPATH": f"{REPO / 'src'}:{site}",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        argv = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                "--inh-caps=-all", "--ambient-caps=-all", f"--bounding-set=-all{bounding}",
                *(["--no-new-privs"] if no_new_privs else []), "--",
                "/usr/bin/python3", "-m", "flanscan", "scan", "127.0.0.1", "--no-db",
                "--format", "json", "--output-dir", str(self.base / "work" / run),
                "--", "-p", str(self.port)]  # fmt: skip
        return subprocess.run(argv, cwd=self.base / "work", env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    def run_json(self, run: str) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.base / "work" / run / "run.json").read_text())
        return data


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("setcap") is None:
        pytest.skip("needs root, setpriv (util-linux) and setcap (libcap2-bin)")
    base = Path(tempfile.mkdtemp(prefix="flan-priv-"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base.chmod(0o755)
        for name in ("bin", "bin-nocopy", "work"):
            (base / name).mkdir()
        (base / "work").chmod(0o777)
        nmap = shutil.which("nmap") or "/usr/bin/nmap"
        for bindir in ("bin", "bin-nocopy"):
            shutil.copy(nmap, base / bindir / "nmap")
            subprocess.run(["setcap", "cap_net_raw+ep", str(base / bindir / "nmap")], check=True)
        # The copy the image ships: `install` does not copy the capability xattr.
        subprocess.run(["install", "-m", "0755", nmap, str(base / "bin" / "nmap-unprivileged")],
                       check=True)  # fmt: skip
        yield Sandbox(base, server.server_address[1])
    finally:
        server.shutdown()
        shutil.rmtree(base, ignore_errors=True)


def test_net_raw_in_the_bounding_set_gives_a_syn_scan(sandbox: Sandbox) -> None:
    out = sandbox.flan(",+net_raw", run="syn")
    assert out.returncode == 0, out.stderr
    run = sandbox.run_json("syn")
    assert run["scan_type"] == "-sS" and run["privileged"] is True and run["status"] == "complete"
    nmap = run["nmap"]
    assert isinstance(nmap, dict) and nmap["path"] == str(sandbox.base / "bin" / "nmap")
    assert "raw packets" not in out.stderr


@pytest.mark.parametrize(
    ("bounding", "no_new_privs", "why"),
    [
        ("", False, "CAP_NET_RAW is not granted"),  # pod without NET_RAW: exec gives EPERM
        (",+net_raw", True, "no_new_privs is set"),  # allowPrivilegeEscalation: false
    ],
)
def test_without_the_capability_flan_falls_back_to_a_connect_scan(
    sandbox: Sandbox, bounding: str, no_new_privs: bool, why: str
) -> None:
    name = f"fallback{bounding}{no_new_privs}"
    out = sandbox.flan(bounding, no_new_privs=no_new_privs, run=name)
    assert out.returncode == 0, out.stderr
    run = sandbox.run_json(name)
    assert run["scan_type"] == "-sT" and run["privileged"] is False
    assert run["status"] == "complete"  # not "incomplete": Nmap was not told to use raw sockets
    workers = run["workers"]
    assert isinstance(workers, list) and all(w["status"] == "done" for w in workers)
    nmap = run["nmap"]
    assert isinstance(nmap, dict)
    # The capability-free copy (under no_new_privs the other one would run too, without it).
    assert Path(nmap["path"]).name == "nmap-unprivileged"
    # One note, saying why and what to do; never an "install nmap" for a permission problem.
    assert out.stderr.count("Nmap cannot send raw packets here") == 1
    assert why in out.stderr and "grant NET_RAW" in out.stderr
    assert "install" not in out.stderr.lower()
    report = json.loads((sandbox.base / "work" / name / "report.json").read_text())
    ports = [loc["port"] for s in report["services"] for loc in s["locations"]]
    assert sandbox.port in ports


def test_without_the_capability_and_without_a_copy_the_error_says_how(sandbox: Sandbox) -> None:
    out = sandbox.flan("", copy=False, run="nocopy")
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "operation not permitted" in lines[0] and "grant NET_RAW" in lines[0]
    assert "nmap-unprivileged" in lines[0]
    assert "apt-get install nmap" not in lines[0]
