"""Fleet run planning (run id, shard, destination, the original container's environment) and
uploads while a run is produced, against real storage servers on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import test_storage_servers as servers
from test_storage_servers import CloudEnv

from flanscan._errors import UsageError
from flanscan._run.environment import legacy_formats, legacy_output, legacy_targets_file
from flanscan._run.placement import plan_fleet_run
from flanscan._run.shard import Shard
from flanscan._run.uploads import RunUploader
from flanscan._storage import RetryPolicy, parse_location

# The storage servers' fixtures (pytest finds fixtures by module attribute).
s3, gcs, cloud = servers.s3, servers.gcs, servers.cloud

FORMATS = ("json", "html", "md", "csv", "tex", "pdf")


def test_locations() -> None:
    loc = parse_location("s3://bucket/some/prefix/")
    assert (loc.scheme, loc.bucket, loc.prefix) == ("s3", "bucket", "some/prefix")
    assert loc.child("run", "shard-0-of-2").url == "s3://bucket/some/prefix/run/shard-0-of-2"
    assert parse_location("gs://b").url == "gs://b"
    assert not parse_location("results/dir").is_remote
    for bad in ("s3://", "ftp://host/x"):
        with pytest.raises(UsageError) as err:
            parse_location(bad)
        assert bad in str(err.value)
    # a refused URL with credentials is named with the credentials masked, never echoed
    with pytest.raises(UsageError) as err:
        parse_location("s3://key:secret@bucket/x")
    assert "s3://***@bucket/x" in str(err.value)
    assert "secret" not in str(err.value)


def test_original_container_environment() -> None:
    assert legacy_output({}) is None
    assert legacy_output({"upload": "aws", "bucket": "reports"}) == "s3://reports"
    assert legacy_output({"upload": "gcp", "bucket": "reports/"}) == "gs://reports"
    with pytest.raises(UsageError, match="bucket=NAME"):
        legacy_output({"upload": "aws"})
    with pytest.raises(UsageError, match="aws or gcp"):
        legacy_output({"upload": "azure", "bucket": "x"})
    assert legacy_formats({"format": "md"}, FORMATS) == ("md",)
    assert legacy_formats({"format": "json,html"}, FORMATS) == ("json", "html")
    with pytest.raises(UsageError, match="format="):
        legacy_formats({"format": "docx"}, FORMATS)


def test_legacy_targets_file(tmp_path: Path) -> None:
    ips = tmp_path / "ips.txt"
    assert legacy_targets_file(ips) is None
    ips.write_text("127.0.0.1\n")
    assert legacy_targets_file(ips) == ips


def test_plan_precedence(tmp_path: Path) -> None:
    env = {
        "JOB_COMPLETION_INDEX": "1",
        "FLAN_SHARD_COUNT": "3",
        "FLAN_RUN_ID": "flan-scan-123",
        "upload": "gcp",
        "bucket": "legacy-bucket",
    }
    plan = plan_fleet_run(output=None, output_dir=None, shard=None, run_id=None, env=env,
                          default_base=tmp_path)  # fmt: skip
    assert plan.shard == Shard(1, 3)
    assert plan.run_id == "flan-scan-123"
    assert plan.remote_url == "gs://legacy-bucket/flan-scan-123/shard-1-of-3"
    assert plan.run_dir == tmp_path / "flan-scan-123" / "shard-1-of-3"
    # Flags win over the environment.
    plan = plan_fleet_run(output="s3://b/p", output_dir=tmp_path / "here", shard="0/2",
                          run_id="mine", env=env)  # fmt: skip
    assert (plan.shard, plan.run_id, plan.run_dir) == (Shard(0, 2), "mine", tmp_path / "here")
    assert plan.remote_url == "s3://b/p/mine/shard-0-of-2"
    # A shard without a run id cannot meet its siblings.
    with pytest.raises(UsageError, match="FLAN_RUN_ID"):
        plan_fleet_run(output=None, output_dir=None, shard="0/2", run_id=None, env={})
    with pytest.raises(UsageError, match="run id"):
        plan_fleet_run(output=None, output_dir=None, shard=None, run_id="../x", env={})
    # A local --output is written in place: nothing to copy.
    plan = plan_fleet_run(output=str(tmp_path / "out"), output_dir=None, shard="1/2",
                          run_id="r", env={})  # fmt: skip
    assert plan.run_dir == tmp_path / "out" / "r" / "shard-1-of-2"
    assert plan.sink is None and plan.remote_url is None


def _run_json(run_dir: Path, statuses: dict[str, str]) -> None:
    workers = [{"name": n, "status": s, "xml": f"xml/{n}.xml"} for n, s in statuses.items()]
    tmp = run_dir / ".run.json.tmp"
    tmp.write_text(json.dumps({"workers": workers}))
    tmp.replace(run_dir / "run.json")


def _wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_worker_xml_is_uploaded_as_soon_as_the_worker_ends(cloud: CloudEnv, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "xml").mkdir(parents=True)
    sink = cloud.sink("fleet")
    uploader = RunUploader(sink, run_dir, "r1/shard-0-of-2", poll=0.05)
    (run_dir / "xml" / "scan-01.xml").write_text("<nmaprun>one</nmaprun>")
    (run_dir / "xml" / "scan-02.xml").write_text("<nmaprun>partial")
    _run_json(run_dir, {"scan-01": "running", "scan-02": "running"})
    uploader.start()
    try:
        assert _wait_for(lambda: "r1/shard-0-of-2/run.json" in sink.list())
        assert not any(k.endswith(".xml") for k in sink.list("r1/"))  # nothing finished yet
        _run_json(run_dir, {"scan-01": "done", "scan-02": "running"})
        assert _wait_for(lambda: "r1/shard-0-of-2/xml/scan-01.xml" in sink.list())
        assert "r1/shard-0-of-2/xml/scan-02.xml" not in sink.list()  # still in flight
    finally:
        uploader.stop()
    (run_dir / "xml" / "scan-02.xml").write_text("<nmaprun>two</nmaprun>")
    _run_json(run_dir, {"scan-01": "done", "scan-02": "done"})
    report = run_dir / "report.json"
    report.write_text("{}")
    done = run_dir / "done.json"
    done.write_text('{"status": "complete"}')
    assert uploader.finish([report], done) == {}
    keys = sink.list("r1/")
    names = ("run.json", "xml/scan-01.xml", "xml/scan-02.xml", "report.json", "done.json")
    assert keys == sorted(f"r1/shard-0-of-2/{k}" for k in (*names, "uploads.json"))
    # The manifest names every key the run wrote (a retried shard removes only those).
    listed = tmp_path / "uploads.json"
    sink.get_file("r1/shard-0-of-2/uploads.json", listed)
    assert json.loads(listed.read_text())["keys"] == keys
    back = tmp_path / "back.xml"
    sink.get_file("r1/shard-0-of-2/xml/scan-02.xml", back)
    assert back.read_text() == "<nmaprun>two</nmaprun>"


def test_failed_uploads_are_reported_and_done_json_withheld(
    cloud: CloudEnv, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "xml").mkdir(parents=True)
    (run_dir / "xml" / "scan-01.xml").write_text("<nmaprun/>")
    _run_json(run_dir, {"scan-01": "done"})
    done = run_dir / "done.json"
    done.write_text("{}")
    notes: list[str] = []
    uploader = RunUploader(cloud.sink(), run_dir, "r2", policy=RetryPolicy((0.01, 0.01)),
                           note=notes.append)  # fmt: skip
    cloud.stop()
    failures = uploader.finish([], done)
    assert set(failures) == {"r2/xml/scan-01.xml", "r2/run.json", "r2/done.json"}, failures
    # The first file was tried three times; after that the store counts as broken: one try.
    assert sum("attempt" in n for n in notes) == 2
    assert (run_dir / "xml" / "scan-01.xml").read_text() == "<nmaprun/>"  # kept


def test_rerun_into_a_used_directory_keeps_the_earlier_upload(tmp_path: Path) -> None:
    store = tmp_path / "store"
    earlier = store / "r9" / "shard-0-of-2" / "xml" / "scan-01.xml"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("<nmaprun/>")
    run_dir = tmp_path / "staging"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    plan = plan_fleet_run(output=str(store), output_dir=run_dir, shard="0/2", run_id="r9",
                          env={})  # fmt: skip
    assert plan.sink is not None  # a local destination other than the run dir is copied to
    with pytest.raises(UsageError, match="already holds a run"):
        plan.begin([], [], 0)
    assert earlier.read_text() == "<nmaprun/>"


def test_retried_shard_replaces_what_an_earlier_attempt_uploaded(tmp_path: Path) -> None:
    from flanscan._targets import parse_target

    store = tmp_path / "store"
    stale = store / "r9" / "shard-1-of-2" / "xml" / "service-0042.xml"
    stale.parent.mkdir(parents=True)
    stale.write_text("<nmaprun/>")
    # The earlier attempt's manifest names what it uploaded; a file it does not name stays.
    (store / "r9" / "shard-1-of-2" / "uploads.json").write_text(json.dumps(
        {"keys": ["r9/shard-1-of-2/xml/service-0042.xml", "r9/shard-1-of-2/uploads.json",
                  "r9/other/x.txt", "../../outside.txt"]}))  # fmt: skip
    foreign = store / "r9" / "shard-1-of-2" / "notes.txt"
    foreign.write_text("someone else's")
    notes: list[str] = []
    plan = plan_fleet_run(output=str(store), output_dir=tmp_path / "pod", shard="1/2",
                          run_id="r9", env={}, note=notes.append)  # fmt: skip
    specs = [parse_target("127.0.0.1-2", "test")]
    plan.begin(specs, [], len(plan.select(specs, [])))
    assert not stale.exists()
    assert foreign.read_text() == "someone else's"
    assert any("earlier attempt" in n for n in notes)
    info = json.loads((store / "r9" / "shard-1-of-2" / "shard.json").read_text())
    assert info["targets"] == ["127.0.0.1-2"] and info["shard_targets"] == 1
