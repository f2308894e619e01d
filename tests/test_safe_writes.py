"""No write outside the destination (issue 13, item 1): object keys with `..`, absolute or empty
components are refused by every sink and every download (`flan merge s3://` / `gs://` against
moto and the GCS emulator on loopback), and reports are created without following a symlink
planted at a predictable temporary name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import test_storage_servers as servers
from test_storage_servers import CloudEnv

from flanscan._safefile import UnsafeKey, key_parts, write_atomic
from flanscan._storage import LocalSink, StorageError

s3, gcs, cloud = servers.s3, servers.gcs, servers.cloud

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "nmap-xml-samples"
FLAN = [sys.executable, "-m", "flanscan"]

HOSTILE_KEYS = [
    "shard-0-of-1/../../escaped.txt",
    "shard-0-of-1/xml/../../../escaped.txt",
    "/shard-0-of-1/escaped.txt",
    "shard-0-of-1//escaped.txt",
    "shard-0-of-1/./escaped.txt",
    "shard-0-of-1/..\\..\\escaped.txt",
]


def _flan(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLAN, *args], cwd=cwd, env=dict(os.environ), capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _raw_put(env: CloudEnv, key: str, body: bytes) -> None:
    """Store an object under exactly `key`, as a hostile bucket writer would (not via a sink)."""
    if env.scheme == "s3":
        import boto3

        boto3.client("s3").put_object(Bucket=env.bucket, Key=key, Body=body)
    else:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(credentials=AnonymousCredentials(), project="flan-test")  # type: ignore[no-untyped-call]
        client.bucket(env.bucket).blob(key).upload_from_string(body, retry=None)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_key_parts_refuses_keys_that_leave_the_directory(key: str) -> None:
    with pytest.raises(UnsafeKey):
        key_parts(key)


def test_key_parts_accepts_plain_keys() -> None:
    assert key_parts("run/shard-0-of-2/xml/scan-01.xml") == ("run", "shard-0-of-2", "xml",
                                                             "scan-01.xml")  # fmt: skip


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_local_sink_refuses_hostile_keys_for_every_operation(key: str, tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "store" / "base")
    src = tmp_path / "src.txt"
    src.write_text("x")
    for op in (lambda: sink.put_file(src, key), lambda: sink.get_file(key, tmp_path / "o"),
               lambda: sink.delete([key])):  # fmt: skip
        with pytest.raises(StorageError) as err:
            op()
        assert err.value.permanent
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*"))


def test_cloud_sinks_refuse_hostile_keys(cloud: CloudEnv, tmp_path: Path) -> None:
    src = tmp_path / "src.txt"
    src.write_text("x")
    sink = cloud.sink("fleet")
    for key in HOSTILE_KEYS:
        with pytest.raises(StorageError):
            sink.put_file(src, key)
        with pytest.raises(StorageError):
            sink.get_file(key, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_remote_merge_never_writes_outside_its_directory(cloud: CloudEnv, tmp_path: Path) -> None:
    # A shard pod with write access to the bucket plants a key that climbs out of the merge's
    # download directory (tmp_path/merged-N), toward tmp_path/escaped.txt. The GCS emulator
    # refuses to store keys with ".." (real GCS stores them): there only "//" is tried.
    keys = [HOSTILE_KEYS[0], HOSTILE_KEYS[1], HOSTILE_KEYS[3]]
    if cloud.scheme == "gs":
        keys = [HOSTILE_KEYS[3]]
    for n, key in enumerate(keys):
        _raw_put(cloud, f"job-{n}/shard-0-of-1/shard.json", b'{"run_id": "job"}')
        _raw_put(cloud, f"job-{n}/{key}", b"owned")
        out = tmp_path / f"merged-{n}"
        result = _flan(["merge", cloud.url(f"job-{n}"), "--no-db", "--no-history", "-o",
                        str(out)], tmp_path)  # fmt: skip
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "refusing object key" in lines[0], result.stderr
        assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*"))


def test_report_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in ("report.json.part", ".report.json.tmp", "report.json"):
        (out / name).symlink_to(victim) if name != "report.json" else None
    result = _flan(["report", str(SAMPLES / "1_hosts.xml"), "--no-db", "-f", "json", "-o",
                    str(out)], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "precious\n"
    assert (out / "report.json").is_file() and not (out / "report.json").is_symlink()


def test_write_atomic_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "run.json"
    link.symlink_to(victim)
    write_atomic(link, "{}\n")
    assert victim.read_text() == "precious\n"
    assert not link.is_symlink() and link.read_text() == "{}\n"


def test_scan_does_not_follow_a_symlink_planted_in_its_run_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "targets").mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run / "logs" / "scan-01.log").symlink_to(victim)
    (run / "targets" / "exclude.txt").symlink_to(victim)
    result = _flan(["scan", "127.0.0.1", "--no-db", "-f", "json", "--exclude", "127.0.0.2",
                    "--output-dir", str(run), "--", "-p", "1"], tmp_path)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert victim.read_text() == "precious\n"
    # The worker whose log name was planted fails by name (exit 3); nothing was written through.
    assert result.returncode == 3 and "scan-01" in result.stderr, result.stderr
    assert not (run / "targets" / "exclude.txt").is_symlink()
