"""The Kubernetes Job's pods, run for real: deploy/job rendered with kustomize (kubectl's, pinned
in requirements-dev.lock) through an overlay as a user would write one (image, bucket, targets),
then every index of the Indexed Job started as a pod with `podman kube play`, in parallel,
uploading to moto's S3 on loopback; pod 0 merges.

The same with deploy/components/restricted (Pod Security "restricted": no NET_RAW, no privilege
escalation): every pod runs the connect-scan fallback and says so once.

What podman cannot do and this therefore does not prove: the Job controller (retries with
backoffLimitPerIndex, activeDeadlineSeconds, ttlSecondsAfterFinished), the CronJob schedule,
Secret objects through envFrom (podman 4.3 creates the secret but does not load it; the test's
fake keys travel in the flan-settings ConfigMap), the ServiceAccount, and pod networking: podman
cannot put pods into another namespace, so they use the host's network and scan only loopback
addresses (127.0.0.2-5), where a real OpenSSH is started on 127.0.0.3:22. docs/fleet.md.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _podman import REPO, BuiltImage, ensure_image, podman, podman_unusable
from test_deploy import render

DEPLOY = REPO / "deploy"
TARGETS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
SSH = ("127.0.0.3", 22)


@pytest.fixture(scope="module")
def image() -> BuiltImage:
    reason = podman_unusable()
    if reason:
        print(f"\nkube play tests skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return ensure_image()


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection((host, port), 1).close()
            return
        except OSError:
            assert proc.poll() is None, f"server for {host}:{port} exited"
            assert time.monotonic() < deadline, f"nothing listens on {host}:{port}"
            time.sleep(0.2)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, str]]:
    """moto on 127.0.0.1 and Debian's sshd on 127.0.0.3:22 (host network, loopback only)."""
    sys.path.insert(0, str(REPO))
    from testlab._daemons import DaemonContext, _prepare_sshd

    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = 20000 + secrets.randbelow(20000)
        moto = subprocess.Popen([str(REPO / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        procs.append(moto)
        _wait_port("127.0.0.1", port, moto)
        work = tmp_path / "sshd"
        work.mkdir()
        ctx = DaemonContext(host="kube", ipv4=SSH[0], ipv6=None, port=SSH[1], workdir=work,
                            log=work / "log")  # fmt: skip
        sshd = subprocess.Popen(_prepare_sshd(ctx).argv, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        procs.append(sshd)
        _wait_port(*SSH, sshd)
        env = {
            "AWS_ACCESS_KEY_ID": "AKIAFLANKUBE" + secrets.token_hex(4).upper(),
            "AWS_SECRET_ACCESS_KEY": "flan-kube-secret-" + secrets.token_hex(12),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
            "AWS_EC2_METADATA_DISABLED": "true",
            "FLAN_UPLOAD_RETRY_DELAYS": "0.2,1",
        }
        yield env
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def _s3(env: dict[str, str]) -> Any:
    import boto3

    os.environ.setdefault("AWS_CONFIG_FILE", "/dev/null")
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    return session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"])


def _overlay(
    tmp_path: Path, image: BuiltImage, bucket: str, env: dict[str, str], restricted: bool
) -> Path:
    """A kustomize overlay over deploy/job, as a user fills in the placeholders."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "ips.txt").write_text("".join(f"{t}\n" for t in TARGETS))
    (overlay / "suppressions.yaml").write_text((DEPLOY / "base" / "suppressions.yaml").read_text())
    name, tag = image.tag.rsplit(":", 1)
    literals = [f"FLAN_OUTPUT=s3://{bucket}/flan", "FLAN_MERGE_WAIT=300",
                *(f"{k}={v}" for k, v in env.items())]  # fmt: skip
    kustomization = {
        "resources": [os.path.relpath(DEPLOY / "job", overlay)],
        "images": [{"name": "registry.example.invalid/flanscan", "newName": name, "newTag": tag}],
        "configMapGenerator": [
            {"name": "flan-settings", "behavior": "merge", "literals": literals},
            {
                "name": "flan-targets",
                "behavior": "replace",
                "files": ["ips.txt", "suppressions.yaml"],
            },
        ],
    }
    if restricted:
        kustomization["components"] = [os.path.relpath(DEPLOY / "components/restricted", overlay)]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return overlay


def _pods(objs: list[dict[str, Any]]) -> tuple[str, int, list[dict[str, Any]]]:
    """The Indexed Job's pods as the Job controller makes them: one per completion index, with
    the job-name label and JOB_COMPLETION_INDEX."""
    (job,) = [o for o in objs if o["kind"] == "Job"]
    name = job["metadata"]["name"]
    count = job["spec"]["completions"]
    pods = []
    for index in range(count):
        template = copy.deepcopy(job["spec"]["template"])
        meta = template.get("metadata", {})
        meta["name"] = f"{name}-{index}"
        labels = meta.setdefault("labels", {})
        labels["batch.kubernetes.io/job-name"] = name
        labels["batch.kubernetes.io/job-completion-index"] = str(index)
        for container in template["spec"]["containers"]:
            container.setdefault("env", []).append(
                {"name": "JOB_COMPLETION_INDEX", "value": str(index)}
            )
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]})
    return name, count, pods


@pytest.mark.parametrize(
    ("profile", "scan_type"),
    [("privileged", "-sS"), ("restricted", "-sT")],
    ids=["net-raw-syn-scan", "restricted-component-connect-scan"],
)
def test_indexed_job_pods_upload_every_shard_and_pod_0_merges(
    image: BuiltImage, servers: dict[str, str], tmp_path: Path, profile: str, scan_type: str
) -> None:
    """The manifests as shipped (NET_RAW: SYN scans), and with deploy/components/restricted
    (Pod Security "restricted": no NET_RAW, no privilege escalation: connect scans)."""
    restricted = profile == "restricted"
    bucket = "flan-kube"
    s3 = _s3(servers)
    s3.create_bucket(Bucket=bucket)
    objs = render(_overlay(tmp_path, image, bucket, servers, restricted))
    job_name, count, pods = _pods(objs)
    assert count == len(TARGETS) and pods[0]["spec"]["containers"][0]["image"] == image.tag
    # The rendered pod is the manifest's: non-root, read-only root, only NET_RAW or nothing.
    sc = pods[0]["spec"]["containers"][0]["securityContext"]
    caps = {"drop": ["ALL"]} if restricted else {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert sc["readOnlyRootFilesystem"] and sc["capabilities"] == caps
    assert sc["allowPrivilegeEscalation"] is not restricted
    config_maps = [o for o in objs if o["kind"] == "ConfigMap"]
    play = tmp_path / "play.yaml"
    play.write_text(yaml.safe_dump_all([*config_maps, *pods]))
    containers = [f"{p['metadata']['name']}-flan" for p in pods]
    try:
        out = podman("kube", "play", "--replace", "--network", "host", str(play), check=False)
        assert out.returncode == 0, out.stderr
        for name in containers:
            code = podman("wait", name, timeout=900).stdout.strip()
            logs = podman("logs", name, check=False)
            said = logs.stdout + logs.stderr
            assert code == "0", f"{name} exited {code}: {said}"
            # The fallback's note, once per pod, only where it applies; never "install nmap".
            # (pod 0's merge repeats each shard's warnings: count the scan's own note)
            assert said.count("note: Nmap cannot send raw packets here") == int(restricted), said
            assert "install" not in said.lower()
    finally:
        podman("kube", "down", str(play), check=False)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"flan/{job_name}/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    prefix = f"flan/{job_name}"
    shard_sizes = []
    for index in range(count):
        shard = f"{prefix}/shard-{index}-of-{count}"
        assert f"{shard}/done.json" in keys, sorted(keys)
        done = json.loads(s3.get_object(Bucket=bucket, Key=f"{shard}/done.json")["Body"].read())
        assert done["status"] == "complete"
        run = json.loads(s3.get_object(Bucket=bucket, Key=f"{shard}/run.json")["Body"].read())
        assert run["scan_type"] == scan_type
        shard_sizes.append(run["hosts"]["total"])
    assert shard_sizes == [1] * count  # each pod scanned its own share of the four targets
    for name in ("report.html", "report.json", "merge.json"):
        assert f"{prefix}/{name}" in keys, sorted(keys)
    merge = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/merge.json")["Body"].read())
    assert merge["complete"] and merge["shard_count"] == count
    report = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/report.json")["Body"].read())
    found = {(loc["address"], loc["port"]) for s in report["services"] for loc in s["locations"]
             if s["product"] == "OpenSSH"}  # fmt: skip
    assert SSH in found
    scan = report["scan"]
    assert scan["hosts_up"] + scan["hosts_down"] == len(TARGETS)  # the full report
