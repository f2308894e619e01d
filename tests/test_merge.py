"""`flan merge`: real shards (`flan scan --shard` on loopback), one report and one history
entry, missing and incomplete shards named and their targets not checked, remote runs in S3
and GCS, --wait."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_storage_servers as servers
from test_storage_servers import CloudEnv

from flanscan._history import default_history, open_history

# The storage servers' fixtures (pytest finds fixtures by module attribute).
s3, gcs, cloud = servers.s3, servers.gcs, servers.cloud

FLAN = [sys.executable, "-m", "flanscan"]
TARGETS = ["127.0.0.1-4"]  # four loopback addresses, one line: shards split the expansion
NMAP = ["--", "-p", "1-20"]


def _flan(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLAN, *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _scan_shard(index: int, count: int, output: str, cwd: Path, run_id: str) -> None:
    args = ["scan", *TARGETS, "--no-db", "--format", "json", "--shard", f"{index}/{count}",
            "--output", output, *NMAP]  # fmt: skip
    cwd.mkdir(parents=True, exist_ok=True)
    run = _flan(args, cwd, FLAN_RUN_ID=run_id)
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def local_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of three shards scanned for real (in parallel), written locally."""
    base = tmp_path_factory.mktemp("shards")
    procs = [
        subprocess.Popen(
            [
                *FLAN,
                "scan",
                *TARGETS,
                "--no-db",
                "--format",
                "json",
                "--shard",
                f"{i}/3",
                "--output",
                str(base / "out"),
                *NMAP,
            ],
            cwd=base,
            env={**os.environ, "FLAN_RUN_ID": "run-a"},
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    return base / "out" / "run-a"


def _copy(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "runs" / run.name
    shutil.copytree(run, dest)
    return dest


def _report(path: Path) -> dict:  # type: ignore[type-arg]
    data: dict = json.loads((path / "report.json").read_text())  # type: ignore[type-arg]
    return data


def test_shards_split_the_targets(local_shards: Path) -> None:
    shares = []
    for i in range(3):
        run_json = json.loads((local_shards / f"shard-{i}-of-3" / "run.json").read_text())
        shares.append(run_json["targets"])
        assert (
            json.loads((local_shards / f"shard-{i}-of-3" / "done.json").read_text())["status"]
            == "complete"
        )
    assert shares == [["127.0.0.1", "127.0.0.4"], ["127.0.0.2"], ["127.0.0.3"]]


def test_merge_complete_run_one_report_one_history_entry(
    local_shards: Path, tmp_path: Path
) -> None:
    run = _copy(local_shards, tmp_path)
    result = _flan(["merge", str(run), "--no-db", "-f", "json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(run / "report.json")
    merged = _report(run)
    # The terminal summary of the merged run comes before the path (no database: no CVEs).
    services, hosts = len(merged["services"]), len(merged["hosts"])
    total = f"Total: 0 of {services} services vulnerable, on {hosts} hosts; no vulnerability"
    assert total in result.stdout
    assert merged["scan"]["targets"] == TARGETS  # as the user gave them, not the shares
    assert merged["scan"]["incomplete_targets"] == []
    assert merged["scan"]["run_id"] == "run-a"
    shard_reports = [_report(run / f"shard-{i}-of-3") for i in range(3)]
    assert merged["scan"]["hosts_up"] == sum(r["scan"]["hosts_up"] for r in shard_reports) == 4
    locations = sorted(
        (loc["address"], loc["port"]) for svc in merged["services"] for loc in svc["locations"]
    )
    expected = sorted(
        (loc["address"], loc["port"])
        for r in shard_reports
        for svc in r["services"]
        for loc in svc["locations"]
    )
    assert locations == expected
    store = open_history(default_history(), create=False)
    try:
        runs = store.runs()
    finally:
        store.close()
    assert [(r.id, r.source) for r in runs] == [("run-a", "merge")]
    record = json.loads((run / "merge.json").read_text())
    assert record["complete"] and record["missing"] == [] and record["shard_count"] == 3


def test_missing_shard_is_named_and_its_targets_not_checked(
    local_shards: Path, tmp_path: Path
) -> None:
    run = _copy(local_shards, tmp_path)
    shutil.rmtree(run / "shard-1-of-3")
    result = _flan(["merge", str(run), "--no-db", "-f", "json", "--no-history"], tmp_path)
    assert result.returncode == 3, result.stderr
    assert "shard 1/3 missing" in result.stderr
    merged = _report(run)
    assert merged["scan"]["incomplete_targets"] == ["127.0.0.2"]
    assert any("shard 1/3 missing" in w for w in merged["scan"]["warnings"])
    addresses = {loc["address"] for svc in merged["services"] for loc in svc["locations"]}
    assert "127.0.0.2" not in addresses
    assert json.loads((run / "merge.json").read_text())["missing"] == [1]


def test_incomplete_shard_without_done_json(local_shards: Path, tmp_path: Path) -> None:
    run = _copy(local_shards, tmp_path)
    (run / "shard-0-of-3" / "done.json").unlink()
    result = _flan(["merge", str(run), "--no-db", "-f", "json", "-o", str(tmp_path / "m"),
                    "--no-history"], tmp_path)  # fmt: skip
    assert result.returncode == 3
    assert "shard 0/3 incomplete (no done.json" in result.stderr
    merged = _report(tmp_path / "m")
    assert merged["scan"]["incomplete_targets"] == ["127.0.0.1", "127.0.0.4"]


def test_not_a_run_directory(tmp_path: Path) -> None:
    result = _flan(["merge", str(tmp_path), "--no-db"], tmp_path)
    assert result.returncode == 2
    assert "no shard-<I>-of-<N> directories" in result.stderr and "Traceback" not in result.stderr


def test_remote_merge_downloads_and_uploads_back(cloud: CloudEnv, tmp_path: Path) -> None:
    for i in range(2):
        _scan_shard(i, 2, cloud.url("fleet"), tmp_path / f"pod{i}", "job-7")
    out = tmp_path / "merged"
    result = _flan(["merge", cloud.url("fleet/job-7"), "--no-db", "-f", "json", "-f", "md",
                    "-o", str(out)], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    keys = cloud.sink("fleet/job-7").list()
    assert {"report.json", "report.md", "merge.json"} <= set(keys)
    back = tmp_path / "back.json"
    cloud.sink("fleet/job-7").get_file("report.json", back)
    assert json.loads(back.read_text()) == _report(out)
    assert _report(out)["scan"]["hosts_up"] == 4


def test_wait_polls_until_the_last_shard_is_done(s3: CloudEnv, tmp_path: Path) -> None:
    _scan_shard(0, 2, s3.url("w"), tmp_path / "pod0", "job-w")
    # Nothing more comes within a second: merge what is there, the missing shard named.
    quick = _flan(["merge", s3.url("w/job-w"), "--no-db", "-f", "json", "--wait", "1",
                   "--no-history", "-o", str(tmp_path / "early")], tmp_path)  # fmt: skip
    assert quick.returncode == 3 and "shard 1/2 missing" in quick.stderr
    assert "not every shard finished within 1s" in quick.stderr
    log = tmp_path / "merge-stderr.txt"
    with log.open("w") as stderr:  # a file: the test reads what merge logged while it runs
        merge = subprocess.Popen(
            [
                *FLAN,
                "merge",
                s3.url("w/job-w"),
                "--no-db",
                "-f",
                "json",
                "--wait",
                "120",
                "-o",
                str(tmp_path / "late"),
            ],
            cwd=tmp_path,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    # Shard 1 is written only once merge has seen the run without it, so that it must poll.
    deadline = time.monotonic() + 60
    while "waiting for shards: 1 of 2 complete" not in log.read_text():
        assert merge.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"merge never said it waits: {log.read_text()}"
        time.sleep(0.05)
    _scan_shard(1, 2, s3.url("w"), tmp_path / "pod1", "job-w")
    merge.communicate(timeout=120)
    assert merge.returncode == 0, log.read_text()
    assert _report(tmp_path / "late")["scan"]["incomplete_targets"] == []


def test_every_option_is_documented() -> None:
    from flanscan._cli.merge import merge
    from flanscan._cli.scan import scan

    docs = (Path(__file__).resolve().parent.parent / "docs" / "fleet.md").read_text()
    options = [o for p in merge.params for o in p.opts if o.startswith("-")]
    options += ["--output", "--shard", "--run-id"]  # what fleet scale adds to flan scan
    assert {"--output", "--shard", "--run-id"} <= {o for p in scan.params for o in p.opts}
    for option in options:
        assert f"`{option}" in docs or f" {option}" in docs, option


def test_shard_xml_with_hosts_outside_its_targets_is_named(
    local_shards: Path, tmp_path: Path
) -> None:
    run = _copy(local_shards, tmp_path)
    # shard 0 holds shard 1's XML (127.0.0.2: in the run, not in shard 0's share) ...
    (one,) = (run / "shard-1-of-3" / "xml").glob("*.xml")
    shutil.copy(one, run / "shard-0-of-3" / "xml" / "planted.xml")
    # ... and shard 2 an XML of a host nobody listed
    (run / "shard-2-of-3" / "xml" / "planted.xml").write_text(
        '<?xml version="1.0"?><nmaprun scanner="nmap" args="nmap 127.0.0.9" start="1700000000">'
        '<host><status state="up" reason="syn-ack"/><address addr="127.0.0.9" addrtype="ipv4"/>'
        '<ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack"/>'
        '<service name="ssh" product="OpenSSH" version="9.2p1" method="probed" conf="10"/>'
        '</port></ports></host><runstats><finished time="1700000001"/></runstats></nmaprun>\n'
    )
    result = _flan(["merge", str(run), "--no-db", "-f", "json", "--no-history"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "shard 0/3: its Nmap XML holds 1 host(s) outside its targets: 127.0.0.2" in result.stderr
    assert "shard 2/3: its Nmap XML holds 1 host(s) outside its targets: 127.0.0.9" in result.stderr
    assert "1 host(s) in the Nmap XML are outside the scan's targets and left out of the " \
        "report: 127.0.0.9" in result.stderr  # fmt: skip
    merged = _report(run)
    addresses = {h["address"] for h in merged["hosts"]}
    assert "127.0.0.9" not in addresses and "127.0.0.2" in addresses
    assert any("127.0.0.9" in note for note in merged["notes"])


def test_two_directories_for_one_shard_are_refused(local_shards: Path, tmp_path: Path) -> None:
    run = _copy(local_shards, tmp_path)
    shutil.copytree(run / "shard-1-of-3", run / "shard-01-of-3")
    result = _flan(["merge", str(run), "--no-db", "-f", "json", "--no-history"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "flan: error: shard 1/3 has two directories, shard-01-of-3 and shard-1-of-3: keep the "
        "one its pod wrote (shard-1-of-3) and remove the other"
    )


def test_a_shard_claiming_other_targets_cannot_widen_the_scope(
    local_shards: Path, tmp_path: Path
) -> None:
    run = _copy(local_shards, tmp_path)
    info_path = run / "shard-2-of-3" / "shard.json"
    info = json.loads(info_path.read_text())
    info["targets"] = [*info["targets"], "127.0.0.9"]
    info_path.write_text(json.dumps(info))
    result = _flan(["merge", str(run), "--no-db", "-f", "json", "--no-history"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"flan: error: {info_path}: lists other targets or excludes than the run's other "
        "shards; merge only shards of one run"
    )
