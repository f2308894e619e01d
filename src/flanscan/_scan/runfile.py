"""The run's `run.json`: written atomically so a reader never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` with `data` as indented JSON (write to a temporary file, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".run-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """The run.json of a run directory."""
    data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data
