"""The container image, built with podman and run (see tests/_podman.py for how and why).

Every scan runs against Debian's real OpenSSH on the loopback of a network namespace with no
other interface (`--network=none`), with the security settings a user will meet: NET_RAW, none,
no-new-privileges, the pod model of Kubernetes/Docker (capabilities only in the bounding set, made
with setpriv), a read-only root; and the original image's `upload=aws bucket=...` contract
against moto's S3 on that loopback.
"""

# ruff: noqa: F811 - pytest fixtures imported from tests._pg_fixture are used as arguments
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from _podman import (
    FEEDS,
    REPO,
    SHARED,
    BuiltImage,
    Netns,
    ensure_image,
    netns_factory,
    podman,
    podman_unusable,
    start_s3,
    start_sshd,
)

from tests._pg_fixture import pg_server, pg_url  # noqa: F401 - fixtures

__all__ = ["netns_factory"]  # the fixture, imported for pytest

SSH_PORT = 22  # in Nmap's top 1000, which the default command scans
FORMATS = ("json", "html", "md", "csv", "tex", "pdf")
# Kubernetes (containerd, CRI-O) and Docker give a non-root container process the added
# capabilities in its bounding set only; podman also makes them ambient. setpriv reproduces the
# former: started as root with just what it needs to switch, it leaves flan uid 10001 and
# `bounding` (e.g. ",+net_raw").
SWITCH_CAPS = ("--cap-add", "SETUID,SETGID,SETPCAP")


def setpriv_args(bounding: str, no_new_privs: bool) -> list[str]:
    return ["--reuid", "10001", "--regid", "10001", "--clear-groups", "--inh-caps=-all",
            "--ambient-caps=-all", f"--bounding-set=-all{bounding}",
            *(["--no-new-privs"] if no_new_privs else []), "--", "flan"]  # fmt: skip


@pytest.fixture(scope="module")
def image() -> BuiltImage:
    reason = podman_unusable()
    if reason:
        print(f"\nimage tests skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    built = ensure_image()
    when = f"built in {built.build_seconds:.0f} s" if built.built_now else "cached"
    print(f"\nimage {built.tag}: {built.size_bytes / 1e6:.0f} MB ({when})", file=sys.stderr)
    return built


@pytest.fixture(scope="module")
def lab_ns(
    image: BuiltImage, netns_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Netns]:
    ns: Netns = netns_factory(image.tag)
    start_sshd(ns, tmp_path_factory.mktemp("sshd"), SSH_PORT)
    yield ns


def run_flan(
    image: BuiltImage,
    ns: Netns,
    results: Path,
    flan_args: Sequence[str],
    options: Sequence[str] = ("--cap-drop", "ALL", "--cap-add", "NET_RAW"),
    model: tuple[str, bool] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`podman run` of the image in `ns`'s network, read-only root, /results from the host.
    `model=(bounding, no_new_privs)` runs flan as Kubernetes would (see SWITCH_CAPS)."""
    results.mkdir(parents=True, exist_ok=True)
    results.chmod(0o777)
    argv = ["run", "--rm", "--network", ns.network(), "--read-only", "--tmpfs", "/tmp",
            "-v", f"{results}:/results", *options]  # fmt: skip
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    if model is not None:
        bounding, nnp = model
        argv += ["--cap-drop", "ALL", *SWITCH_CAPS]
        if "net_raw" in bounding:
            argv += ["--cap-add", "NET_RAW"]
        if nnp:
            argv += ["--security-opt", "no-new-privileges"]
        argv += ["--user", "0", "--entrypoint", "setpriv", image.tag, *setpriv_args(bounding, nnp)]
    else:
        argv.append(image.tag)
    return podman(*argv, *flan_args, check=False, timeout=600)


def scan_args(out: str, *formats: str) -> list[str]:
    fmt = [a for f in formats or ("json",) for a in ("--format", f)]
    return ["scan", "127.0.0.1", "--output-dir", f"/results/{out}", *fmt, "--",
            "-p", str(SSH_PORT)]  # fmt: skip


def read_run(results: Path, out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((results / out / "run.json").read_text())
    return data


def ssh_found(results: Path, out: str) -> dict[str, Any]:
    report = json.loads((results / out / "report.json").read_text())
    for svc in report["services"]:
        if svc["product"] == "OpenSSH" and any(loc["port"] == SSH_PORT for loc in svc["locations"]):
            found: dict[str, Any] = svc
            return found
    raise AssertionError(f"OpenSSH on {SSH_PORT} not in the report: {report['services']}")


# --------------------------------------------------------------------------- the image itself


def test_version_user_and_contents(image: BuiltImage) -> None:
    from flanscan import __version__

    out = podman("run", "--rm", "--network=none", image.tag, "--version")
    assert out.stdout.strip() == f"flan, version {__version__}"
    probe = (
        "import os, importlib.util as u\n"
        "print(os.getuid(), os.getgid(), os.getcwd())\n"
        "print(u.find_spec('pip') is None, u.find_spec('setuptools') is None)\n"
        "for p in ('/usr/bin/nmap', '/usr/local/bin/nmap-unprivileged'):\n"
        "    try: print(p, os.getxattr(p, 'security.capability').hex())\n"
        "    except OSError: print(p, 'none')\n"
    )
    out = podman("run", "--rm", "--network=none", "--entrypoint", "python3", image.tag, "-c", probe)
    ids, build_tools, nmap, copy = out.stdout.splitlines()
    assert ids == "10001 10001 /results"
    assert build_tools == "True True"  # no pip, no setuptools in the final image
    # cap_net_raw (bit 13) in the permitted word, effective flag set; the copy has none.
    assert nmap.split()[1].startswith("01000002" + "00200000")
    assert copy.endswith(" none")
    group = podman("run", "--rm", "--network=none", "--entrypoint", "getent", image.tag, "group",
                   "flan").stdout  # fmt: skip
    assert group.startswith("flan:x:10001:")
    # The build secrets (proxy CA, pip.conf) left nothing behind.
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image.tag).stdout
    assert image.secret_marker not in history
    grep = podman("run", "--rm", "--network=none", "--user", "0", "--entrypoint", "grep",
                  image.tag, "-rlsF", image.secret_marker, "/etc", "/opt", "/root", "/tmp",
                  "/var", "/run", check=False)  # fmt: skip
    assert grep.returncode == 1 and not grep.stdout, grep.stdout


# --------------------------------------------------------------------------- scans


@pytest.mark.parametrize(
    "model",
    [None, (",+net_raw", False)],
    ids=["podman-cap-add-net-raw", "pod-net-raw-file-capability"],
)
def test_syn_scan_with_net_raw(
    image: BuiltImage, lab_ns: Netns, tmp_path: Path, model: tuple[str, bool] | None
) -> None:
    out = run_flan(image, lab_ns, tmp_path, scan_args("syn"), model=model)
    assert out.returncode == 0, out.stderr
    run = read_run(tmp_path, "syn")
    assert run["scan_type"] == "-sS" and run["privileged"] is True
    assert run["status"] == "complete" and run["nmap"]["path"] == "/usr/bin/nmap"
    assert "raw packets" not in out.stderr
    ssh_found(tmp_path, "syn")


@pytest.mark.parametrize(
    ("options", "model", "why"),
    [
        (("--cap-drop", "ALL"), None, "CAP_NET_RAW is not granted"),
        ((), ("", False), "CAP_NET_RAW is not granted"),
        ((), (",+net_raw", True), "no_new_privs is set"),
    ],
    ids=["podman-no-capabilities", "pod-restricted-no-net-raw", "pod-net-raw-no-new-privileges"],
)
def test_connect_scan_fallback(
    image: BuiltImage,
    lab_ns: Netns,
    tmp_path: Path,
    options: tuple[str, ...],
    model: tuple[str, bool] | None,
    why: str,
) -> None:
    out = run_flan(image, lab_ns, tmp_path, scan_args("tcp"), options=options, model=model)
    assert out.returncode == 0, out.stderr
    run = read_run(tmp_path, "tcp")
    assert run["scan_type"] == "-sT" and run["privileged"] is False
    assert run["status"] == "complete"
    assert run["nmap"]["path"] == "/usr/local/bin/nmap-unprivileged"
    assert out.stderr.count("Nmap cannot send raw packets here") == 1 and why in out.stderr
    assert "install" not in out.stderr.lower()
    ssh_found(tmp_path, "tcp")


def _host_report(xml_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """The same scan's XML reported on the host with a database of the same feeds."""
    db = tmp_path / "host.sqlite3"
    flan = str(REPO / ".venv" / "bin" / "flan")
    feeds = [str(SHARED / "nvd-sample" / f) for f in FEEDS]
    subprocess.run([flan, "db", "import", "--db", str(db), *feeds], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    out = tmp_path / "host-report.json"
    subprocess.run([flan, "report", str(xml_dir), "--db", str(db), "-f", "json", "-o", str(out)],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_every_format_read_only_root_and_the_baked_database(
    image: BuiltImage, lab_ns: Netns, tmp_path: Path
) -> None:
    out = run_flan(image, lab_ns, tmp_path, scan_args("all", *FORMATS))
    assert out.returncode in (0, 1), out.stderr  # 1: findings at the --fail-on level
    run_dir = tmp_path / "all"
    for fmt in FORMATS:
        assert (run_dir / f"report.{fmt}").stat().st_size > 0, fmt
    assert (run_dir / "report.pdf").read_bytes().startswith(b"%PDF-")
    assert "\\documentclass" in (run_dir / "report.tex").read_text()
    assert "OpenSSH" in (run_dir / "report.html").read_text()
    assert "OpenSSH" in (run_dir / "report.md").read_text()
    assert "OpenSSH" in (run_dir / "report.csv").read_text()
    report = json.loads((run_dir / "report.json").read_text())
    vulndb = report["vulnerability_database"]
    assert vulndb["available"] and vulndb["path"] == "/var/lib/flan/vulndb.sqlite3"
    assert vulndb["cve_count"] > 0
    # The baked database gives what the host gives with a database of the same feeds.
    svc = ssh_found(tmp_path, "all")
    host = _host_report(run_dir / "xml", tmp_path)
    host_ssh = next(s for s in host["services"] if s["product"] == "OpenSSH")
    assert {v["id"] for v in svc["vulnerabilities"]} == {
        v["id"] for v in host_ssh["vulnerabilities"]
    }
    assert svc["vulnerabilities"], "the sample has OpenSSH CVEs: the baked database was not used"


def test_the_original_upload_contract(image: BuiltImage, lab_ns: Netns, tmp_path: Path) -> None:
    """`upload=aws bucket=NAME` and /shared/ips.txt, the image's default command, as the
    original image was run: the run is uploaded to s3://NAME/<run-id>/."""
    s3 = start_s3(lab_ns)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ips.txt").write_text("127.0.0.1\n")
    shared.chmod(0o755)
    results = tmp_path / "results"
    out = run_flan(image, lab_ns, results, [],
                   options=("--cap-drop", "ALL", "--cap-add", "NET_RAW",
                            "-v", f"{shared}:/shared:ro"),
                   env={"upload": "aws", "bucket": s3.bucket, **s3.container_env})  # fmt: skip
    assert out.returncode == 0, out.stderr
    keys = s3.keys()
    (run_id,) = {k.split("/")[0] for k in keys}  # one run, at the bucket's top
    for name in ("done.json", "run.json", "report.html", "report.json"):
        assert f"{run_id}/{name}" in keys, keys
    done = json.loads(s3.get(f"{run_id}/done.json"))
    assert done["status"] == "complete"
    report = json.loads(s3.get(f"{run_id}/report.json"))
    assert any(loc["port"] == SSH_PORT for s in report["services"] for loc in s["locations"])
    text = out.stdout + out.stderr + "".join(s3.get(k).decode(errors="replace") for k in keys
                                             if k.endswith(".json"))  # fmt: skip
    assert s3.container_env["AWS_SECRET_ACCESS_KEY"] not in text


def test_postgresql_history(image: BuiltImage, lab_ns: Netns, tmp_path: Path, pg_url: str) -> None:
    """A `postgresql://` history from the image (psycopg over Debian's libpq5): two scans
    recorded into the test suite's PostgreSQL, listed, and diffed by the database."""
    for out in ("pg1", "pg2"):
        scanned = run_flan(image, lab_ns, tmp_path, scan_args(out))
        assert scanned.returncode in (0, 1), scanned.stderr
    cves = {v["id"] for v in ssh_found(tmp_path, "pg1")["vulnerabilities"]}
    assert cves, "the baked database gives OpenSSH CVEs"

    def flan(*args: str) -> subprocess.CompletedProcess[str]:
        # The server listens on the host's loopback: this container shares the host's network
        # and connects to nothing else. The scans are not in the working directory, where a
        # run id (the directory's name) would be read as a path.
        return podman("run", "--rm", "--network=host", "--read-only", "-v",
                      f"{tmp_path}:/scans:ro", image.tag, *args, "--history", pg_url,
                      check=False)  # fmt: skip

    # The second run without the database: its OpenSSH has no findings, so all are "fixed".
    for args in (("/scans/pg1",), ("/scans/pg2", "--no-db")):
        out = flan("history", "import", *args)
        assert out.returncode == 0 and "recorded as run" in out.stdout, out.stdout + out.stderr
    listed = flan("history", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["hosts"] for r in runs] == [1, 1]
    new_id, old_id = (r["id"] for r in runs)  # newest first
    again = flan("history", "import", "/scans/pg1")
    assert f"already recorded as run {old_id}" in again.stdout, again.stdout + again.stderr
    diffed = flan("diff", old_id, new_id, "--format", "json")
    assert diffed.returncode == 0, diffed.stderr
    changes = json.loads(diffed.stdout)
    fixed = {i["vuln_id"] for i in changes["items"] if i["kind"] == "fixed-finding"}
    assert fixed == cves, changes
    assert changes["counts"]["new-finding"] == 0
