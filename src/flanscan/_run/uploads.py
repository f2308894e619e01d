"""Upload a run's files while it is produced: each worker's XML as soon as that Nmap process
ended, run.json when a worker's status changes, then (at the end) logs, reports and done.json.

The scan engine is not aware of this: a background thread watches the run directory's
run.json, which the engine rewrites whenever a worker ends. A crash therefore loses at most the
workers in flight. Local files are never removed.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from flanscan._records import (
    MANIFEST_FILE,
    RUN_FILE,
    TERMINAL_WORKER_STATES,
    RecordError,
    RunRecord,
    UploadsManifest,
    write_record,
)
from flanscan._storage import RetryPolicy, Sink, StorageError, retrying


class RunUploader:
    """Copies files of `run_dir` to `sink` under `key_prefix`, with retries.

    After one file has failed every attempt, later files get a single attempt each, so a dead
    endpoint costs seconds per file rather than minutes.
    """

    def __init__(
        self,
        sink: Sink,
        run_dir: Path,
        key_prefix: str,
        *,
        policy: RetryPolicy | None = None,
        poll: float = 1.0,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.sink = sink
        self.run_dir = run_dir
        self.key_prefix = key_prefix.strip("/")
        self.policy = policy or RetryPolicy.from_env()
        self.poll = poll
        self.note = note or (lambda message: None)
        self.failures: dict[str, str] = {}  # key -> last error
        self.uploaded: dict[str, tuple[int, int]] = {}  # key -> (size, mtime_ns) sent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._broken = False
        self._last_states: tuple[tuple[str, str], ...] = ()
        self._manifest: list[str] = []

    def key(self, path: Path) -> str:
        """The storage key of a file of the run directory."""
        rel = path.relative_to(self.run_dir).as_posix()
        return f"{self.key_prefix}/{rel}" if self.key_prefix else rel

    @property
    def manifest_key(self) -> str:
        return f"{self.key_prefix}/{MANIFEST_FILE}" if self.key_prefix else MANIFEST_FILE

    def _announce(
        self, key: str, policy: RetryPolicy, on_retry: Callable[[int, StorageError], None]
    ) -> None:
        """Add `key` to the manifest in storage before the key itself is written."""
        if key in self._manifest:
            return
        keys = sorted({*self._manifest, key, self.manifest_key})
        with tempfile.TemporaryDirectory(prefix="flan-manifest-") as tmp:
            local = Path(tmp) / MANIFEST_FILE
            write_record(local, UploadsManifest(tuple(keys)))
            retrying(
                lambda: self.sink.put_file(local, self.manifest_key), policy, on_retry=on_retry
            )
        self._manifest = keys

    def upload(self, path: Path, *, force: bool = False) -> bool:
        """Upload one file (unless already sent unchanged); False when every attempt failed."""
        with self._lock:
            key = self.key(path)
            try:
                stat = path.stat()
            except OSError:
                return True
            signature = (stat.st_size, stat.st_mtime_ns)
            if not force and self.uploaded.get(key) == signature:
                return True
            policy = RetryPolicy(()) if self._broken else self.policy

            def on_retry(attempt: int, exc: StorageError) -> None:
                self.note(f"upload of {key} failed (attempt {attempt}), retrying: {exc}")

            try:
                self._announce(key, policy, on_retry)
                retrying(lambda: self.sink.put_file(path, key), policy, on_retry=on_retry)
            except StorageError as exc:
                self.failures[key] = str(exc)
                self._broken = True
                return False
            self.failures.pop(key, None)
            self.uploaded[key] = signature
            self._broken = False
            return True

    # ---------------------------------------------------------------- while scanning

    def start(self) -> None:
        """Start watching the run directory in a background thread."""
        self._thread = threading.Thread(target=self._watch, name="flan-upload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the upload in progress, if any, completes)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            self.sync_finished_workers()

    def sync_finished_workers(self) -> None:
        """Upload the XML of every worker that ended, and run.json when a status changed."""
        run_json = self.run_dir / RUN_FILE
        try:
            record = RunRecord.read(self.run_dir)
        except RecordError:
            return  # not written yet, or being replaced
        states = []
        for worker in record.workers:
            states.append((worker.name, worker.status))
            if worker.status in TERMINAL_WORKER_STATES and worker.xml is not None:
                path = self.run_dir / worker.xml
                if path.is_file() and _inside(path, self.run_dir):
                    self.upload(path)
        if tuple(states) != self._last_states:
            self._last_states = tuple(states)
            self.upload(run_json)

    # ---------------------------------------------------------------- at the end

    def finish(self, reports: Sequence[Path], done: Path | None) -> dict[str, str]:
        """Stop watching; upload every remaining file, then the reports, then `done` last.
        Returns the keys that could not be uploaded, with their last error."""
        self.stop()
        skip = {p.resolve() for p in reports}
        if done is not None:
            skip.add(done.resolve())
        rest = sorted(
            p
            for p in self.run_dir.rglob("*")
            if p.is_file() and p.resolve() not in skip and not p.name.startswith(".")
        )
        # XML first (the results), run.json after it, reports, done.json last.
        rest.sort(key=lambda p: (p.name != RUN_FILE, p.parent.name != "xml", str(p)))
        rest.sort(key=lambda p: p.name == RUN_FILE)
        for path in [*rest, *reports]:
            if path.is_file():
                self.upload(path)
        if done is not None and not self.failures:
            self.upload(done, force=True)
        elif done is not None:
            # done.json says the upload is complete: never claim that when a file is missing.
            self.failures.setdefault(self.key(done), "not uploaded: earlier uploads failed")
        return dict(self.failures)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
