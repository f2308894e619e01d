"""The run's `run.json`: written atomically so a reader never sees half a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flanscan._safefile import write_atomic


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` with `data` as indented JSON (write to a temporary file, then rename)."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """The run.json of a run directory."""
    data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data
