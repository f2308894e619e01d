"""The run directory's typed records: round trips, lenient reading of older files, one-line
errors for damaged ones, and the one atomic writer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flanscan._records import (
    SCHEMA_VERSION,
    DoneRecord,
    DoneWorker,
    HostCounts,
    MergedShard,
    MergeRecord,
    RecordError,
    RunRecord,
    ShardId,
    ShardRecord,
    UploadsManifest,
    WorkerRecord,
    read_manifest,
    read_run_record,
    write_record,
)

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_round_trips(tmp_path: Path) -> None:
    worker = WorkerRecord("scan-01", "scan", "done", ("127.0.0.1",), 1, "nmap -sV 127.0.0.1",
                          "xml/scan-01.xml", "logs/scan-01.log", 0, WHEN, WHEN, None)  # fmt: skip
    run = RunRecord(run_id="r", status="complete", targets=("127.0.0.1",), workers=(worker,),
                    start=WHEN, end=WHEN, hosts=HostCounts(1, 1, 0),
                    incomplete_targets=())  # fmt: skip
    shard = ShardRecord(run_id="r", shard=ShardId(1, 3), targets=("127.0.0.0/30",), created=WHEN)
    done = DoneRecord(run_id="r", status="failed", shard=ShardId(1, 3),
                      hosts=HostCounts(4, 1, 3), end=WHEN,
                      workers=(DoneWorker("scan-01", "scan", "failed", 1, 4, "boom"),))  # fmt: skip
    shards = (MergedShard(0, "complete"), MergedShard(1, "missing", "no dir"))
    merge = MergeRecord("r", "s3://b/r", WHEN, 2, shards)
    manifest = UploadsManifest(("r/a", "r/uploads.json"))
    for record in (run, shard, done, merge, manifest):
        path = tmp_path / "record.json"
        write_record(path, record)
        data = json.loads(path.read_text())
        assert data["schema_version"] == SCHEMA_VERSION
        assert type(record).from_json(data) == record
    assert json.loads(path.read_text())["keys"] == ["r/a", "r/uploads.json"]
    assert merge.to_json()["missing"] == [1] and merge.to_json()["complete"] is False
    assert done.to_json()["hosts_scanned"] == 4


def test_older_and_hand_written_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{}")
    record = read_run_record(tmp_path)
    assert record is not None and record.status == "running" and record.targets == ()
    # done.json of an earlier version: no schema_version, no hosts object
    done = DoneRecord.from_json({"run_id": "r", "status": "complete", "hosts_scanned": 3})
    assert done.hosts.total == 3


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"targets": "127.0.0.1"}, "'targets' should be a list of strings"),
        ({"status": "finished"}, "'status' is 'finished'"),
        ({"workers": [{"phase": "scan", "status": "done", "hosts": "1"}]}, "workers[0]"),
        ({"schema_version": SCHEMA_VERSION + 1}, "newer than this flan reads"),
        ({"start": "yesterday"}, "not an ISO time"),
    ],
)
def test_damaged_run_record_is_a_one_line_error(tmp_path: Path, data: object, named: str) -> None:
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(RecordError) as err:
        RunRecord.read(tmp_path)
    message = str(err.value)
    assert named in message and str(tmp_path / "run.json") in message
    assert "\n" not in message
    assert read_run_record(tmp_path) is None  # readers that may skip a record do


def test_done_record_needs_a_known_status() -> None:
    with pytest.raises(RecordError, match="'status' is ''"):
        DoneRecord.from_json({"run_id": "r"})


def test_manifest_lists_only_keys_below_the_prefix(tmp_path: Path) -> None:
    path = tmp_path / "uploads.json"
    write_record(path, UploadsManifest(("r/s/a.xml", "r/s/", "other/b", "r/s2/c")))
    assert read_manifest(path, "r/s") == ["r/s/a.xml"]
    path.write_text("[1, 2]")
    assert read_manifest(path, "r/s") == []
