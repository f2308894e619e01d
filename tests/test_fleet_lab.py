"""Fleet scale end to end on the lab: three shards scanned in parallel processes inside the
scanner namespace, uploaded to an S3 server (moto) running on that namespace's loopback, merged;
the merged report's services, locations and vulnerability ids equal an unsharded scan's.
A missing shard is reported as missing (exit code 3, the shard named).

The helpers are also used by bench/bench_shards.py."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
FLAN = str(REPO / ".venv" / "bin" / "flan")
PYTHON = sys.executable


@dataclass
class NamespaceS3:
    """moto's S3 server on the scanner namespace's loopback (the root namespace's loopback is
    not reachable from there), and the environment a client needs."""

    lab: Any
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    bucket: str

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run Python inside the scanner namespace with the S3 environment."""
        return self.lab.exec([PYTHON, "-c", code], env=self.env, capture_output=True, text=True,
                             timeout=60)  # fmt: skip

    def keys(self, prefix: str) -> list[str]:
        out = self.python(
            "from flanscan._storage._s3 import S3Sink\n"
            f"print('\\n'.join(S3Sink({self.bucket!r}).list({prefix!r})))"
        )
        assert out.returncode == 0, out.stderr
        return [k for k in out.stdout.splitlines() if k]

    def delete(self, keys: Sequence[str]) -> None:
        out = self.python(
            "from flanscan._storage._s3 import S3Sink\n"
            f"S3Sink({self.bucket!r}).delete({list(keys)!r})"
        )
        assert out.returncode == 0, out.stderr

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_namespace_s3(lab: Any, bucket: str = "flan-lab") -> NamespaceS3:
    """Start moto_server inside the lab's scanner namespace and create `bucket`."""
    port = 20000 + secrets.randbelow(20000)
    proc = lab.popen([str(REPO / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIAFLANLAB" + secrets.token_hex(4).upper(),
        "AWS_SECRET_ACCESS_KEY": "flan-lab-secret-" + secrets.token_hex(12),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "FLAN_UPLOAD_RETRY_DELAYS": "0.2,1",
    }
    env.pop("AWS_PROFILE", None)
    s3 = NamespaceS3(lab, proc, env, bucket)
    deadline = time.monotonic() + 30
    while True:
        out = s3.python(f"import boto3\nboto3.client('s3').create_bucket(Bucket={bucket!r})")
        if out.returncode == 0:
            return s3
        if proc.poll() is not None or time.monotonic() > deadline:
            s3.stop()
            raise RuntimeError(f"moto_server did not start in the scanner namespace: {out.stderr}")
        time.sleep(0.3)


def scan_shards(
    lab: Any,
    s3: NamespaceS3,
    count: int,
    run_id: str,
    workdir: Path,
    extra: Sequence[str] = (),
) -> float:
    """`flan scan --shard I/N` for every I as parallel processes in the scanner namespace,
    each uploading to s3://bucket/fleet; returns the wall time in seconds."""
    env = {**s3.env, "FLAN_RUN_ID": run_id}
    t0 = time.monotonic()
    procs = []
    for i in range(count):
        cwd = workdir / f"{run_id}-pod{i}"
        cwd.mkdir(parents=True)
        argv = [FLAN, "scan", *lab.targets, "--shard", f"{i}/{count}",
                "--output", f"s3://{s3.bucket}/fleet", "--format", "json", *extra]  # fmt: skip
        procs.append(lab.popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True))  # fmt: skip
    for i, proc in enumerate(procs):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"shard {i}/{count}: {err}"
    return time.monotonic() - t0


def merge(lab: Any, s3: NamespaceS3, run_id: str, out: Path, extra: Sequence[str] = ()) -> Any:
    """`flan merge s3://bucket/fleet/<run-id>` inside the scanner namespace."""
    return lab.exec([FLAN, "merge", f"s3://{s3.bucket}/fleet/{run_id}", "-o", str(out),
                     "-f", "json", *extra], env=s3.env, capture_output=True, text=True,
                    timeout=600)  # fmt: skip


def scan_unsharded(lab: Any, out: Path, extra: Sequence[str] = ()) -> float:
    """One `flan scan` of every lab target; returns the wall time in seconds."""
    t0 = time.monotonic()
    run = lab.exec([FLAN, "scan", *lab.targets, "--output-dir", str(out), "--format", "json",
                    *extra], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return time.monotonic() - t0


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """What must not change when a scan is sharded: each service with its locations and the
    vulnerability ids found for it."""
    services = {}
    for svc in report["services"]:
        key = (svc["name"], svc["product"], svc["version"], tuple(svc["cpe"] or ()))
        services[key] = {
            "locations": sorted(
                (loc["address"], loc["port"], loc["protocol"], tuple(loc["hostnames"]))
                for loc in svc["locations"]
            ),
            "vulnerabilities": sorted(v["id"] for v in svc["vulnerabilities"]),
        }
    return {"services": services, "hosts_up": report["scan"]["hosts_up"]}


def read_report(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "report.json").read_text())
    return data


# --------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def lab_db(tmp_path_factory: pytest.TempPathFactory, nvd_sample: Path) -> Path:
    from flanscan._vulndb import import_paths

    path = tmp_path_factory.mktemp("fleet-db") / "vulndb.sqlite3"
    import_paths(path, [nvd_sample / "nvdcve-2.0-sample.json.gz"])
    return path


@pytest.fixture
def namespace_s3(lab: Any) -> Iterator[NamespaceS3]:
    s3 = start_namespace_s3(lab)
    try:
        yield s3
    finally:
        s3.stop()


def test_three_shards_merge_to_the_unsharded_report(
    lab: Any, namespace_s3: NamespaceS3, lab_db: Path, tmp_path: Path
) -> None:
    db = ["--db", str(lab_db)]
    scan_shards(lab, namespace_s3, 3, "lab-run", tmp_path, db)
    keys = namespace_s3.keys("fleet/lab-run/")
    for i in range(3):
        for name in ("shard.json", "run.json", "done.json"):
            assert f"fleet/lab-run/shard-{i}-of-3/{name}" in keys
        assert any(k.startswith(f"fleet/lab-run/shard-{i}-of-3/xml/") for k in keys)

    result = merge(lab, namespace_s3, "lab-run", tmp_path / "merged", db)
    assert result.returncode == 0, result.stderr
    scan_unsharded(lab, tmp_path / "single", db)
    merged, single = read_report(tmp_path / "merged"), read_report(tmp_path / "single")
    assert comparable(merged) == comparable(single)
    # Not trivially equal: the lab's services were found, with vulnerabilities from the DB.
    products = {svc["product"] for svc in merged["services"]}
    assert {"OpenSSH", "nginx", "Apache httpd"} <= products
    assert any(svc["vulnerabilities"] for svc in merged["services"])
    assert merged["scan"]["targets"] == lab.targets
    assert "fleet/lab-run/report.json" in namespace_s3.keys("fleet/lab-run/")
    # Every shard's hosts went into one report; each shard scanned a third of them.
    shard_targets = [
        json.loads(
            (tmp_path / f"lab-run-pod{i}/flan-results/lab-run/shard-{i}-of-3/run.json").read_text()
        )["targets"]
        for i in range(3)
    ]
    assert sorted(t for share in shard_targets for t in share) == sorted(lab.targets)
    assert max(map(len, shard_targets)) - min(map(len, shard_targets)) <= 1

    # The same run with shard 2 gone: named as missing, its hosts not checked, exit code 3.
    namespace_s3.delete(namespace_s3.keys("fleet/lab-run/shard-2-of-3/"))
    result = merge(lab, namespace_s3, "lab-run", tmp_path / "partial", [*db, "--no-history"])
    assert result.returncode == 3, result.stderr
    assert "shard 2/3 missing" in result.stderr
    partial = read_report(tmp_path / "partial")
    assert sorted(partial["scan"]["incomplete_targets"]) == sorted(shard_targets[2])
    found = {loc["address"] for svc in partial["services"] for loc in svc["locations"]}
    assert not found & set(shard_targets[2])
    # No credential in anything written.
    text = result.stdout + result.stderr
    text += "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.json"))
    assert namespace_s3.env["AWS_SECRET_ACCESS_KEY"] not in text
    assert namespace_s3.env["AWS_ACCESS_KEY_ID"] not in text


def test_container_privilege_model_non_root_syn_scan(lab: Any, tmp_path: Path) -> None:
    """The image's model without Docker: a non-root user, Nmap with only the file capability
    cap_net_raw+ep and NMAP_PRIVILEGED=1 runs flan's SYN scan; without the capability the same
    raw-socket scan is refused."""
    import shutil
    import tempfile
    import xml.etree.ElementTree as ET

    if shutil.which("setcap") is None:
        pytest.skip("setcap (libcap2-bin) is not installed")
    host = next(h for h in lab.hosts if any(s.port == 22 for s in h.services))
    # `nobody` must reach everything: a world-readable directory outside pytest's 0700 tree.
    base = Path(tempfile.mkdtemp(prefix="flan-capnmap-"))
    try:
        base.chmod(0o755)
        nmap = base / "nmap"
        shutil.copy2("/usr/bin/nmap", nmap)
        subprocess.run(["setcap", "cap_net_raw+ep", str(nmap)], check=True)
        work = base / "work"
        work.mkdir()
        work.chmod(0o777)
        site = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
        env = {**os.environ, "PATH": f"{base}:/usr/bin:/bin", "NMAP_PRIVILEGED": "1",
               "HOME": str(work), "PYTHONPATH": f"{REPO / 'src'}:{site}"}  # fmt: skip
        argv = ["/usr/bin/python3", "-m", "flanscan", "scan", host.ipv4, "--no-db", "--format",
                "json", "--output-dir", str(work / "run"), "--", "-p", "22"]  # fmt: skip
        run = lab.exec(argv, user="nobody", cwd=work, env=env, capture_output=True, text=True,
                       timeout=300)  # fmt: skip
        assert run.returncode == 0, run.stderr
        run_json = json.loads((work / "run" / "run.json").read_text())
        assert run_json["scan_type"] == "-sS" and run_json["privileged"] is True
        assert run_json["nmap"]["path"] == str(nmap)
        (xml,) = (work / "run" / "xml").glob("*.xml")
        assert ET.parse(xml).getroot().find("scaninfo").get("type") == "syn"  # type: ignore[union-attr]
        products = {s["product"] for s in read_report(work / "run")["services"]}
        assert host.service("sshd").nmap_product in products
        # The capability is what makes it work: removed, the raw-socket scan is refused.
        subprocess.run(["setcap", "-r", str(nmap)], check=True)
        refused = lab.exec([str(nmap), "-sS", "-p", "22", host.ipv4], user="nobody", env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        assert refused.returncode != 0
        said = (refused.stdout + refused.stderr).lower()
        assert "failed to open device" in said or "root" in said  # no raw socket
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_manifest_pod_script_scans_uploads_and_merges(lab: Any, tmp_path: Path) -> None:
    """The Job's container script as written in deploy/job/job.yaml, run as the Job's pods would
    (one process per index, in parallel) inside the scanner namespace: every pod scans its shard,
    index 0 waits for the others and uploads one merged report."""
    import yaml

    job = yaml.safe_load((REPO / "deploy" / "job" / "job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    count = job["spec"]["completions"]
    shared = tmp_path / "shared"  # stands for the ConfigMap mounted at /shared
    shared.mkdir()
    (shared / "ips.txt").write_text("".join(f"{t}\n" for t in lab.targets))
    (shared / "suppressions.yaml").write_text(
        (REPO / "deploy" / "base" / "suppressions.yaml").read_text()
    )
    script = container["args"][0].replace("/shared/", f"{shared}/")
    s3 = start_namespace_s3(lab)
    try:
        env = {**s3.env, "FLAN_RUN_ID": job["metadata"]["name"], "FLAN_SHARD_COUNT": str(count),
               "FLAN_OUTPUT": f"s3://{s3.bucket}/flan", "FLAN_MERGE_WAIT": "300",
               "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}  # fmt: skip
        pods = []
        for index in range(count):
            cwd = tmp_path / f"pod{index}"
            cwd.mkdir()
            pod_env = {**env, "JOB_COMPLETION_INDEX": str(index)}
            argv = [*container["command"], script]
            pipe = subprocess.PIPE
            pods.append(lab.popen(argv, cwd=cwd, env=pod_env, stdout=pipe, stderr=pipe, text=True))
        for index, pod in enumerate(pods):
            _, err = pod.communicate(timeout=600)
            assert pod.returncode == 0, f"pod {index}: {err}"
        prefix = f"flan/{job['metadata']['name']}/"
        keys = s3.keys(prefix)
        assert {f"{prefix}{name}" for name in ("report.html", "report.json", "merge.json")} <= set(
            keys
        )
        merged_dir = tmp_path / "pod0" / "flan-results" / job["metadata"]["name"]
        record = json.loads((merged_dir / "merge.json").read_text())
        assert record["complete"] and record["shard_count"] == count
        products = {svc["product"] for svc in read_report(merged_dir)["services"]}
        assert {"OpenSSH", "nginx", "Apache httpd"} <= products
    finally:
        s3.stop()
