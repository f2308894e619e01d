"""The container image built and run for real with podman (tests/test_image.py, test_kube.py).

- The base `debian:bookworm-slim` is made locally by scripts/build-base-image (debootstrap from
  this machine's apt sources): no registry is ever contacted, and builds use `--pull=never`.
- The image is built from a temporary context holding the repository's build inputs and a
  `feeds/` directory (the NVD sample and the KEV catalogue) passed as `VULNDB_DIR`, and tagged
  with the hash of those inputs: an unchanged tree reuses the image of an earlier run.
- This machine's podman needs runc (crun refuses hybrid cgroups) and ulimits no higher than the
  hard limits it has (no CAP_SYS_RESOURCE): a containers.conf says so (docs/development.md).
- Scans run in containers that join the network namespace of an `infra` container started with
  `--network=none` (loopback only). Servers the tests need (OpenSSH, moto's S3) run from the
  host inside that namespace with nsenter, so they are reachable only on its 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CACHE = Path(os.environ.get("FLAN_TEST_CACHE", "/var/tmp/flan-test-cache"))
BASE_IMAGE = "localhost/debian:bookworm-slim"
IMAGE_REPO = "localhost/flanscan-test"
FEEDS = ("nvdcve-2.0-sample.json.gz", "known_exploited_vulnerabilities.json")
# What the Dockerfile reads from the context (and so what the image's cache key covers).
BUILD_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "LICENSE",
                "requirements.lock", "src", "deploy/vulndb")  # fmt: skip


def containers_conf() -> Path:
    """A containers.conf for this machine: runc, and ulimits within the current hard limits."""
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    text = (
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "containers.conf"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf())}


def podman(*args: str, check: bool = True, timeout: float = 600,
           **kw: object) -> subprocess.CompletedProcess[str]:  # fmt: skip
    out = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                         timeout=timeout, check=False, **kw)  # type: ignore[call-overload]  # fmt: skip
    if check and out.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {out.returncode}: {out.stderr}")
    result: subprocess.CompletedProcess[str] = out
    return result


def podman_unusable() -> str | None:
    """Why podman cannot run here at all (the only reason to skip), or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/setup --test installs it)"
    if os.geteuid() != 0:
        return "the image tests run podman as root"
    info = podman("info", check=False, timeout=120)
    if info.returncode != 0:
        return f"`podman info` fails: {info.stderr.strip()[:300]}"
    return None


def _tree_digest(paths: Sequence[Path], digest: hashlib._Hash, root: Path) -> None:
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")


@dataclass
class BuiltImage:
    tag: str
    built_now: bool
    build_seconds: float | None
    secret_marker: str  # written into the pip.conf build secret; must not reach the image
    size_bytes: int = 0


def ensure_base_image() -> None:
    script = str(REPO / "scripts" / "build-base-image")
    out = subprocess.run(
        [script, BASE_IMAGE], env=podman_env(), capture_output=True, text=True, timeout=1800
    )
    assert out.returncode == 0, f"scripts/build-base-image failed: {out.stderr}"


def _pip_index() -> str:
    """The index this machine's pip uses (the build reaches the same one)."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    url = os.environ.get("PIP_INDEX_URL") or out.stdout.strip()
    return url if url.startswith("https://") else "https://pypi.org/simple"


def ensure_image() -> BuiltImage:
    """Build the image (VULNDB_DIR=feeds) unless one of the same inputs exists; return it."""
    ensure_base_image()
    base_id = podman("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE).stdout.strip()
    digest = hashlib.sha256(base_id.encode())
    _tree_digest([REPO / p for p in BUILD_INPUTS], digest, REPO)
    _tree_digest([SHARED / "nvd-sample" / f for f in FEEDS], digest, SHARED)
    key = digest.hexdigest()[:16]
    tag = f"{IMAGE_REPO}:{key}"
    marker = f"flan-test-secret-{key}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)
        return BuiltImage(tag, False, None, marker, size)
    context = Path(CACHE / f"context-{key}")
    shutil.rmtree(context, ignore_errors=True)
    try:
        for rel in BUILD_INPUTS:
            src = REPO / rel
            dst = context / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, dst)
        (context / "feeds").mkdir()
        for name in FEEDS:
            shutil.copy(SHARED / "nvd-sample" / name, context / "feeds" / name)
        secrets_dir = context.with_name(context.name + "-secrets")
        secrets_dir.mkdir(exist_ok=True)
        pipconf = secrets_dir / "pip.conf"
        pipconf.write_text(f"# {marker}\n[global]\nindex-url = {_pip_index()}\ntimeout = 180\n")
        argv = ["build", "--pull=never", "--network=host", "--tag", tag,
                "--build-arg", "VULNDB_DIR=feeds",
                "--secret", f"id=pipconf,src={pipconf}"]  # fmt: skip
        # The machine's CA bundle (it holds an intercepting proxy's CA where there is one).
        ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
        if ca.is_file():
            argv += ["--secret", f"id=ca,src={ca}"]
        t0 = time.monotonic()
        out = podman(*argv, str(context), check=False, timeout=3000)
        seconds = time.monotonic() - t0
        assert out.returncode == 0, (
            f"image build failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        )
    finally:
        shutil.rmtree(context, ignore_errors=True)
        shutil.rmtree(context.with_name(context.name + "-secrets"), ignore_errors=True)
    # Older test images are superseded: keep the store from growing with every change.
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPO).stdout
    for old in listed.split():
        if old != tag:
            podman("rmi", old, check=False)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)
    return BuiltImage(tag, True, seconds, marker, size)


@dataclass
class Netns:
    """A loopback-only network namespace (an `infra` container with --network=none) that scan
    containers join, with host processes started inside it."""

    name: str
    pid: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", "--", *argv]

    def start(self, argv: Sequence[str], **kw: object) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(self.argv(argv), **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
        out: subprocess.CompletedProcess[str] = subprocess.run(
            self.argv(argv),
            capture_output=True,
            text=True,
            check=False,
            **kw,  # type: ignore[call-overload]
        )
        return out

    def wait_port(self, port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1).close()"
        deadline = time.monotonic() + timeout
        while self.run([sys.executable, "-c", code], timeout=30).returncode != 0:
            assert proc.poll() is None, f"server for port {port} exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"nothing listens on 127.0.0.1:{port}"
            time.sleep(0.2)

    def network(self) -> str:
        return f"container:{self.name}"


@pytest.fixture(scope="session")
def netns_factory() -> Iterator[object]:
    made: list[Netns] = []

    def make(image: str) -> Netns:
        name = f"flan-test-netns-{os.getpid()}-{len(made)}-{secrets.token_hex(3)}"
        podman("run", "-d", "--name", name, "--network=none", "--entrypoint", "sleep", image,
               "infinity")  # fmt: skip
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout)
        ns = Netns(name, pid)
        made.append(ns)
        return ns

    yield make
    for ns in made:
        for proc in ns.procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        podman("rm", "--force", "--time", "0", ns.name, check=False)


def start_sshd(ns: Netns, workdir: Path, port: int = 2222) -> subprocess.Popen[bytes]:
    """Debian's real OpenSSH (as the lab configures it) on 127.0.0.1:port of the namespace."""
    sys.path.insert(0, str(REPO))
    from testlab._daemons import DaemonContext, _prepare_sshd

    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "sshd.log"
    ctx = DaemonContext(host="image", ipv4="127.0.0.1", ipv6=None, port=port, workdir=workdir,
                        log=log)  # fmt: skip
    launch = _prepare_sshd(ctx)
    proc = ns.start(launch.argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    ns.wait_port(port, proc)
    return proc


@dataclass
class S3:
    ns: Netns
    port: int
    bucket: str
    env: dict[str, str]  # for host processes inside the namespace
    container_env: dict[str, str]  # for the container (-e)

    def keys(self, prefix: str = "") -> list[str]:
        code = (
            "import boto3\n"
            f"p = boto3.client('s3').get_paginator('list_objects_v2')\n"
            f"for page in p.paginate(Bucket={self.bucket!r}, Prefix={prefix!r}):\n"
            "    for o in page.get('Contents', []): print(o['Key'])\n"
        )
        out = self.ns.run([sys.executable, "-c", code], env=self.env, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    def get(self, key: str) -> bytes:
        code = (
            "import boto3, sys\n"
            f"sys.stdout.buffer.write(boto3.client('s3').get_object(Bucket={self.bucket!r}, "
            f"Key={key!r})['Body'].read())\n"
        )
        out = subprocess.run(self.ns.argv([sys.executable, "-c", code]), env=self.env,
                             capture_output=True, timeout=60, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout


def start_s3(ns: Netns, bucket: str = "flan-image") -> S3:
    """moto's S3 server on 127.0.0.1 of the namespace, with `bucket` created."""
    port = 20000 + secrets.randbelow(20000)
    proc = ns.start([str(REPO / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p",
                     str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ns.wait_port(port, proc)
    env = {
        "AWS_ACCESS_KEY_ID": "AKIAFLANIMG" + secrets.token_hex(4).upper(),
        "AWS_SECRET_ACCESS_KEY": "flan-image-secret-" + secrets.token_hex(12),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
        "AWS_EC2_METADATA_DISABLED": "true",
        "FLAN_UPLOAD_RETRY_DELAYS": "0.2,1",
    }
    host_env = {**os.environ, **env, "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}  # fmt: skip
    host_env.pop("AWS_PROFILE", None)
    code = f"import boto3; boto3.client('s3').create_bucket(Bucket={bucket!r})"
    out = ns.run([sys.executable, "-c", code], env=host_env, timeout=60)
    assert out.returncode == 0, out.stderr
    return S3(ns, port, bucket, host_env, env)
