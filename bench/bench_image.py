"""Size and build time of the container image (target, issue 12: under 250 MB uncompressed with
PDF output; it was 409 MB). Builds with podman from the repository as it is, on the base made by
scripts/build-base-image, with the machine's CA bundle and index as build secrets:

1. a build without cache (every layer: apt, the locked dependencies, the package);
2. a rebuild after a change to the source only (the dependency layers come from the cache);
then prints both times, the image's size and, for the layers, what each adds.

    .venv/bin/python bench/bench_image.py      (as root; about 2-3 minutes)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from _podman import BUILD_INPUTS, _pip_index, ensure_base_image, podman  # noqa: E402

TAG = "localhost/flanscan-bench:latest"
TARGET_MB = 250


def build(context: Path, *extra: str) -> float:
    secrets = context.parent / "pip.conf"
    secrets.write_text(f"[global]\nindex-url = {_pip_index()}\ntimeout = 180\n")
    argv = ["build", "--pull=never", "--network=host", "--tag", TAG,
            "--secret", f"id=pipconf,src={secrets}"]  # fmt: skip
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        argv += ["--secret", f"id=ca,src={ca}"]
    t0 = time.monotonic()
    podman(*argv, *extra, str(context), timeout=3000)
    return time.monotonic() - t0


def main() -> int:
    ensure_base_image()
    with tempfile.TemporaryDirectory(prefix="flan-bench-image-") as tmp:
        context = Path(tmp) / "context"
        for rel in BUILD_INPUTS:
            src, dst = REPO / rel, context / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, dst)
        full = build(context, "--no-cache")
        init = context / "src" / "flanscan" / "__init__.py"
        init.write_text(init.read_text() + f"\n# bench {time.time()}\n")
        incremental = build(context)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", TAG).stdout) / 1e6
    print(f"build without cache:      {full:6.0f} s")
    print(f"rebuild after a src edit: {incremental:6.0f} s")
    print(f"image size:               {size:6.0f} MB uncompressed (target {TARGET_MB} MB: "
          f"{'met' if size < TARGET_MB else 'not met'})")  # fmt: skip
    print("layers (newest first):")
    print(podman("history", "--format", "  {{.Size}}\t{{.CreatedBy}}", TAG).stdout[:3000])
    podman("rmi", TAG, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
