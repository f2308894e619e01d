"""`flan scan --output s3://... | gs://...` on loopback: the run uploaded as produced, failed
uploads retried then reported (exit 4, local copies kept), the original container's
environment, and no credential in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import test_storage_servers as servers
from click.testing import CliRunner
from test_storage_servers import CloudEnv, FaultProxy

from flanscan._cli import cli

# The storage servers' fixtures (pytest finds fixtures by module attribute).
s3, gcs, cloud = servers.s3, servers.gcs, servers.cloud

REPO = Path(__file__).resolve().parent.parent
FLAN = [sys.executable, "-m", "flanscan"]
# A quick scan: one loopback address, a few ports, no vulnerability database.
BASE = ["127.0.0.1", "--no-db", "--format", "json"]
NMAP = ["--", "-p", "1-20"]
QUICK = [*BASE, *NMAP]


def _flan(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run([*FLAN, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _all_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_scan_uploads_the_run_and_leaks_no_credential(cloud: CloudEnv, tmp_path: Path) -> None:
    run = _flan(["scan", *BASE, "--output", cloud.url("fleet"), *NMAP], tmp_path,
                FLAN_RUN_ID="cli-run")  # fmt: skip
    assert run.returncode == 0, run.stderr
    keys = cloud.sink("fleet").list()
    for name in ("run.json", "xml/scan-01.xml", "report.json", "done.json"):
        assert f"cli-run/{name}" in keys, keys
    local = tmp_path / "flan-results" / "cli-run"  # the staging copy is kept
    assert run.stdout.strip().splitlines()[-1] == str(Path("flan-results/cli-run/report.json"))
    assert f"uploaded to {cloud.url('fleet')}/cli-run" in run.stderr
    down = tmp_path / "down"
    for key in keys:
        cloud.sink("fleet").get_file(key, down / key)
    uploaded = json.loads((down / "cli-run/report.json").read_text())
    assert uploaded == json.loads((local / "report.json").read_text())
    done = json.loads((down / "cli-run/done.json").read_text())
    assert done["status"] == "complete" and done["hosts_scanned"] == 1
    assert [w["status"] for w in done["workers"]] == ["done"]
    # Fake credentials were in the environment: none of them in any output.
    text = run.stdout + run.stderr + _all_text(local) + _all_text(down)
    for secret in cloud.secrets:
        assert secret not in text


def test_original_container_environment_and_shared_ips_txt(
    s3: CloudEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ips = tmp_path / "shared" / "ips.txt"
    ips.parent.mkdir()
    ips.write_text("# the original's target file\n127.0.0.1\n")
    monkeypatch.setattr("flanscan._run.environment.LEGACY_TARGETS_FILE", ips)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("upload", "aws")
    monkeypatch.setenv("bucket", s3.bucket)
    monkeypatch.setenv("format", "md")
    monkeypatch.setenv("FLAN_RUN_ID", "legacy")
    result = CliRunner().invoke(cli, ["scan", "--no-db", "--", "-p", "1-5"])
    assert result.exit_code == 0, result.output
    keys = s3.sink().list()
    assert "legacy/report.md" in keys and "legacy/report.json" not in keys
    run_json = json.loads((tmp_path / "flan-results/legacy/run.json").read_text())
    assert run_json["targets"] == ["127.0.0.1"]  # read from the /shared/ips.txt stand-in


def test_failed_uploads_are_retried_reported_and_kept(
    s3: CloudEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store accepts the XML and run.json, then refuses every report upload.
    proxy = FaultProxy(s3.endpoint, lambda method, path: method == "PUT" and "/report." in path)
    try:
        run = _flan(["scan", *BASE, "--output", s3.url("p"), *NMAP], tmp_path,
                    FLAN_RUN_ID="broken", AWS_ENDPOINT_URL_S3=proxy.endpoint,
                    FLAN_UPLOAD_RETRY_DELAYS="0.05,0.05")  # fmt: skip
    finally:
        proxy.close()
    assert run.returncode == 4, run.stderr
    assert "p/broken/report.json" in run.stderr and "local copies kept" in run.stderr
    assert len(proxy.failed) >= 3  # three attempts by flan (each maybe retried by boto3)
    assert all("/report.json" in f for f in proxy.failed)
    keys = s3.sink("p").list()
    assert "broken/xml/scan-01.xml" in keys and "broken/run.json" in keys
    assert "broken/done.json" not in keys  # never claims a complete upload
    local = tmp_path / "flan-results" / "broken"
    assert (local / "report.json").is_file() and (local / "done.json").is_file()
    for secret in s3.secrets:
        assert secret not in run.stdout + run.stderr


def test_unreachable_store_fails_a_shard_before_scanning(s3: CloudEnv, tmp_path: Path) -> None:
    s3.stop()
    run = _flan(["scan", *QUICK], tmp_path, FLAN_RUN_ID="dead", FLAN_UPLOAD_RETRY_DELAYS="0.01")
    assert run.returncode == 0  # without --output nothing is uploaded
    run = _flan(["scan", "--shard", "0/2", "--output", s3.url(), *QUICK], tmp_path,
                FLAN_RUN_ID="dead2", FLAN_UPLOAD_RETRY_DELAYS="0.01")  # fmt: skip
    assert run.returncode == 4, run.stderr
    assert "nothing was scanned" in run.stderr
    assert not (tmp_path / "flan-results/dead2/shard-0-of-2/xml").exists()


def test_shard_needs_a_run_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLAN_RUN_ID", raising=False)
    run = _flan(["scan", "--shard", "0/2", *QUICK], tmp_path)
    assert run.returncode == 2
    assert "FLAN_RUN_ID" in run.stderr and "Traceback" not in run.stderr
    run = _flan(["scan", "--shard", "2/2", *QUICK], tmp_path, FLAN_RUN_ID="x")
    assert run.returncode == 2 and "0 to 1" in run.stderr
