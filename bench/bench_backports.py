"""Findings before and after distribution-aware matching, on the lab's Debian daemons.

    .venv/bin/python bench/bench_backports.py [--tracker FILE] [--no-lab]

Builds a temporary database from the real NVD sample (../shared/nvd-sample) and a Debian
tracker file (default: the test fixture tests/data/distro/debian-tracker.json; give the real
https://security-tracker.debian.org/tracker/data/json with --tracker). Scans the lab with real
Nmap when this machine can host it (root, ip netns), else builds the observations the lab's
scan gives from the installed package versions. Prints, per service and in total, the exact
findings before and after, and how many of the removed ones the installed packages' changelogs
(/usr/share/doc/<package>/changelog.Debian.gz) confirm as fixed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from test_distro_truth import CHANGELOG_GAPS, changelog_truth, lab_hosts  # noqa: E402

from flanscan._distro import apply_distribution, tracker_for  # noqa: E402
from flanscan._match import match_service  # noqa: E402
from flanscan._model import (  # noqa: E402
    Confidence,
    FindingStatus,
    HostObservation,
)
from flanscan._vulndb import VulnDb, import_paths  # noqa: E402

SAMPLE = REPO.parent / "shared" / "nvd-sample"
FIXTURE = REPO / "tests" / "data" / "distro" / "debian-tracker.json"
CLOSED = (FindingStatus.FIXED_BY_DISTRIBUTION, FindingStatus.NOT_AFFECTED)


def scan_lab(workdir: Path) -> tuple[list[HostObservation], dict[tuple[str, int], str]] | None:
    """Hosts from a real Nmap scan of the lab, and (address, port) -> binary package."""
    from testlab._lab import Lab, requirement_problems

    problems = requirement_problems()
    if problems:
        print(f"lab unavailable ({'; '.join(problems)}): using observations built from dpkg")
        return None
    from flanscan._parse import NmapXmlFile

    with Lab() as lab:
        locations = lab.service_locations()
        ports = sorted({loc.service.port for loc in locations if loc.service.protocol == "tcp"})
        xml = workdir / "lab.xml"
        started = time.monotonic()
        lab.exec(
            ["nmap", "-sS", "-sV", "-n", "-p", ",".join(map(str, ports)), "-oX", xml, *lab.targets],
            check=True,
            capture_output=True,
            timeout=900,
        )
        print(
            f"lab scan: {len(lab.targets)} hosts in {time.monotonic() - started:.1f} s (nmap -sV)"
        )
        packages = {
            (loc.address, loc.service.port): loc.service.debian_package or "" for loc in locations
        }
    return list(NmapXmlFile(xml).hosts()), packages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracker", type=Path, default=FIXTURE, help="Debian tracker JSON")
    parser.add_argument("--no-lab", action="store_true", help="do not scan the lab")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="flan-bench-backports-") as tmp:
        work = Path(tmp)
        db_path = work / "vulndb.sqlite3"
        import_paths(db_path, [SAMPLE / "nvdcve-2.0-sample.json.gz", args.tracker])
        print(f"database: NVD sample + {args.tracker}")
        scanned = None if args.no_lab else scan_lab(work)
        if scanned is None:
            built = lab_hosts()
            hosts = [h for h, _ in built]
            packages = {
                (s.observation.address, s.observation.port): s.binary_package
                for _, services in built
                for s in services
            }
            print("observations: built from the lab's installed package versions (dpkg-query)")
        else:
            hosts, packages = scanned

        db = VulnDb.open(db_path)
        tracker = tracker_for(db)
        rows = []
        totals = {
            "before": 0,
            "after": 0,
            "removed": 0,
            "confirmed": 0,
            "unconfirmed": 0,
            "by_text": 0,
        }
        try:
            for host in hosts:
                for svc in host.services:
                    before = [f for f in match_service(svc, db) if f.confidence is Confidence.EXACT]
                    after = apply_distribution(host, svc, before, tracker)
                    removed = [f for f in after if f.status in CLOSED]
                    package = packages.get((host.address, svc.port), "")
                    truth = changelog_truth(package)
                    confirmed = [f for f in removed if f.id in truth]
                    by_text = [f for f in confirmed if (package, f.id) in CHANGELOG_GAPS]
                    unconfirmed = [
                        f for f in after if f.status is FindingStatus.UNCONFIRMED_DISTRIBUTION
                    ]
                    row = {
                        "before": len(before),
                        "after": len(after) - len(removed),
                        "removed": len(removed),
                        "confirmed": len(confirmed),
                        "unconfirmed": len(unconfirmed),
                        "by_text": len(by_text),
                    }
                    for key in totals:
                        totals[key] += row[key]
                    label = f"{host.address}:{svc.port} {svc.banner or svc.name or ''}"
                    rows.append((label[:58], row, [f.id for f in removed if f.id not in truth]))
        finally:
            db.close()

    print()
    print(
        f"{'service':<58} {'before':>6} {'after':>6} {'removed':>7} {'by changelog':>12} "
        f"{'unconf.':>7}"
    )
    for label, row, _ in rows:
        print(
            f"{label:<58} {row['before']:>6} {row['after']:>6} {row['removed']:>7} "
            f"{row['confirmed']:>12} {row['unconfirmed']:>7}"
        )
    print(
        f"{'total':<58} {totals['before']:>6} {totals['after']:>6} {totals['removed']:>7} "
        f"{totals['confirmed']:>12} {totals['unconfirmed']:>7}"
    )
    print()
    print(f"exact findings before distribution-aware matching: {totals['before']}")
    print(
        f"open findings after: {totals['after']} "
        f"(of which {totals['unconfirmed']} marked 'unconfirmed: distribution build')"
    )
    print(
        f"removed (fixed by distribution / not affected): {totals['removed']}; "
        f"confirmed by the installed changelogs: {totals['confirmed']} of {totals['removed']}"
    )
    if totals["by_text"]:
        gap_list = ", ".join(
            sorted({f"{p} {c} in {v}" for (p, c), (v, _) in CHANGELOG_GAPS.items()})
        )
        print(
            f"  of which {totals['by_text']} by the entry's text, not by CVE id ({gap_list}); "
            f"by CVE id: {totals['confirmed'] - totals['by_text']}"
        )
    gaps = sorted({cve for _, _, ids in rows for cve in ids})
    if gaps:
        print(f"removed but not named in a changelog: {', '.join(gaps)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
