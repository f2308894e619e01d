"""The Debian security tracker's own text format, `data/CVE/list` from its repository
(https://salsa.debian.org/security-tracker-team/security-tracker).

    CVE-2025-32728 (In sshd in OpenSSH before 10.0, the DisableForwarding directive ...)
        {DLA-4156-1}
        - openssh 1:10.0p1-1 (bug #1102603)
        [bookworm] - openssh 1:9.2p1-2+deb12u6
        [bullseye] - openssh <no-dsa> (Minor issue)
        NOTE: https://...

A package line without `[release]` is unstable ("sid" here); `<not-affected>` there holds for
every release (the vulnerable code was never in Debian's package) and is stored for each, as the
JSON export does. Rows go to `distro_fix` with the JSON export's statuses: a version is
"resolved" (`fixed_version`), `<not-affected>` is "resolved" with fixed version "0",
`<unfixed>`/`<no-dsa>`/`<ignored>`/`<postponed>`/`<end-of-life>` are "open" (with the reason as
a note), `<undetermined>` is "undetermined"; `<removed>` and `<itp>` lines are left out.
Unstable's fixed version also gives the matcher a distribution-derived upstream fix.

Also read: the tracker's `data/DSA/list` (`[25 Jul 2024] DSA-5734-1 bind9 - security update`,
then `{CVE-...}` and `[bookworm] - bind9 1:9.18.28-1~deb12u1`: the fixed version for each CVE
named), and the aquasecurity vuln-list JSON of both files, which keeps each original line
verbatim in `Original` (`{"Header": {"Original": ...}, "Annotations": [{"Original": ...}]}`).
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from flanscan._distro._releases import DEBIAN_RELEASES
from flanscan._distro._tracker import DISTRO_DDL
from flanscan._errors import VulnDbError
from flanscan._vulndb._affected import AFFECTED_DDL, ImportTally
from flanscan._vulndb._files import READ_ERRORS, ContentProbe, feed_error, open_feed
from flanscan._vulndb._progress import Progress
from flanscan._vulndb.sources import (
    Fetcher,
    ImportFile,
    RemoteFile,
    SourceState,
    record_feed_file,
    record_source,
)

NAME = "debian-list"
FILE_NAME = "debian-CVE-list"
DEFAULT_URL = (
    "https://salsa.debian.org/security-tracker-team/security-tracker/-/raw/master/data/CVE/list"
)
UNSTABLE = "sid"
_RELEASES = frozenset(DEBIAN_RELEASES.values())
_HEADER = re.compile(r"^(CVE-\d{4}-(?:\d{4,}|XXXX))(?:\s+(.*))?$")
_PACKAGE = re.compile(
    r"^(?:\[(?P<release>[a-z]+)\]\s+)?-\s+(?P<package>[a-z0-9][a-z0-9+.-]*)"
    r"(?:\s+(?P<what><[a-z-]+>|[^\s(]+))?(?:\s+\((?P<note>.*)\))?\s*$"
)
_DSA_HEADER = re.compile(r"^\[\d{1,2} \w{3} \d{4}\] ((?:DSA|DLA)-[\w-]+) ")
_XREF = re.compile(r"CVE-\d{4}-\d{4,}")
_OPEN = {"<unfixed>", "<no-dsa>", "<ignored>", "<postponed>", "<end-of-life>"}
_SKIP = {"<removed>", "<itp>"}
MAX_LINE = 4096
MAX_JSON = 1 << 20  # a vuln-list entry is a few KiB
_ERRORS: tuple[type[BaseException], ...] = (*READ_ERRORS, KeyError, TypeError)
_BATCH = 5000

Row = tuple[str, str, str, str, str, str | None, str | None, str | None]


def parse_list(lines: Iterator[str], tally: ImportTally, file: str) -> Iterator[Row]:
    """distro_fix rows of a `data/CVE/list` text; lines it cannot read are skipped and counted."""
    cve_id: str | None = None
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            tally.skip(f"{file}:{number}", cve_id, f"line of {len(line)} characters")
            continue
        if not line[0].isspace():
            head = _HEADER.match(line)
            if head is None:
                tally.skip(f"{file}:{number}", None, f"not a CVE header: {line[:60]!r}")
                cve_id = None
                continue
            tally.read += 1
            cve_id = head.group(1) if "XXXX" not in head.group(1) else None
            continue
        if cve_id is None:
            continue
        body = line.strip()
        if body.startswith(("NOTE:", "TODO:", "{", "RESERVED", "REJECTED", "NOT-FOR-US")):
            continue
        m = _PACKAGE.match(body)
        if m is None:
            tally.skip(f"{file}:{number}", cve_id, f"unreadable package line {body[:60]!r}")
            continue
        release = m.group("release") or UNSTABLE
        if release != UNSTABLE and release not in _RELEASES:
            continue
        what, note = m.group("what"), m.group("note")
        package = m.group("package")
        if what in _SKIP:
            continue
        if what == "<not-affected>":
            targets = [UNSTABLE, *sorted(_RELEASES)] if release == UNSTABLE else [release]
            for rel in targets:
                yield ("debian", rel, package, cve_id, "resolved", "0", None, note)
        elif what in _OPEN:
            reason = f"{what.strip('<>')}: {note}" if note else what.strip("<>")
            yield ("debian", release, package, cve_id, "open", None, None, reason)
        elif what == "<undetermined>":
            yield ("debian", release, package, cve_id, "undetermined", None, None, note)
        elif what is None or what.startswith("<"):
            tally.skip(f"{file}:{number}", cve_id, f"unknown state {what!r} for {package}")
        else:
            yield ("debian", release, package, cve_id, "resolved", what, None, note)


def parse_dsa_list(lines: Iterator[str], tally: ImportTally, file: str) -> Iterator[Row]:
    """distro_fix rows of a `data/DSA/list` text: each advisory's fixed versions per release."""
    advisory: str | None = None
    cves: list[str] = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip() or len(line) > MAX_LINE:
            continue
        if not line[0].isspace():
            head = _DSA_HEADER.match(line)
            advisory, cves = (head.group(1), []) if head else (None, [])
            if head is None:
                tally.skip(f"{file}:{number}", None, f"not an advisory header: {line[:60]!r}")
            else:
                tally.read += 1
            continue
        body = line.strip()
        if advisory is None or body.startswith("NOTE:"):
            continue
        if body.startswith("{"):
            cves = _XREF.findall(body)
            continue
        m = _PACKAGE.match(body)
        if m is None or m.group("release") not in _RELEASES:
            continue
        what = m.group("what")
        if what is None or what.startswith("<"):
            continue
        for cve_id in cves:
            yield ("debian", m.group("release"), m.group("package"), cve_id, "resolved", what,
                   None, advisory)  # fmt: skip


def _lines(path: Path) -> Iterator[str]:
    """The text lines of a list file, or of a vuln-list JSON entry (its `Original` lines)."""
    with open_feed(path) as stream:
        head = stream.read(1)
        if head == b"{":
            entry = json.loads(head + stream.read(MAX_JSON))
            yield str(entry["Header"]["Original"]) + "\n"
            for note in entry.get("Annotations") or ():
                yield "\t" + str(note["Original"]) + "\n"
            return
        first = True
        for raw in stream:
            yield (head.decode() if first else "") + raw.decode("utf-8", "replace")
            first = False


def _rows(path: Path, tally: ImportTally) -> Iterator[Row]:
    lines = _lines(path)
    first = next(lines, "")
    rest = itertools.chain([first], lines)
    if _DSA_HEADER.match(first):
        return parse_dsa_list(rest, tally, str(path))
    return parse_list(rest, tally, str(path))


class DebianListSource:
    name = NAME
    title = "Debian security tracker data/CVE/list"
    ddl = DISTRO_DDL + AFFECTED_DDL
    default_url = DEFAULT_URL
    url_env = "FLAN_DEBIAN_LIST_URL"

    def sniff(self, probe: ContentProbe) -> bool:
        if probe.is_json:
            original = str(probe.value_at("Header.Original") or "")
            return "Annotations" in probe.keys_at("") and bool(
                _HEADER.match(original) or _DSA_HEADER.match(original)
            )
        lines = [ln for ln in probe.text_head.splitlines()[:20] if ln.strip()]
        return (
            len(lines) >= 2
            and (_HEADER.match(lines[0]) is not None or _DSA_HEADER.match(lines[0]) is not None)
            and any(ln.startswith(("\t", " ")) for ln in lines[1:])
        )

    def plan(self, fetcher: Fetcher, base_url: str, state: SourceState) -> list[RemoteFile]:
        return [RemoteFile(source=NAME, name=FILE_NAME, url=base_url)]

    def import_files(
        self, conn: sqlite3.Connection, files: Sequence[ImportFile], progress: Progress
    ) -> None:
        tally = ImportTally(NAME)
        count = 0
        task = progress.task("Debian CVE list", None)
        for file in files:
            batch: list[Row] = []
            try:
                for row in _rows(file.path, tally):
                    batch.append(row)
                    if len(batch) >= _BATCH:
                        conn.executemany(
                            "INSERT OR REPLACE INTO distro_fix VALUES (?,?,?,?,?,?,?,?)", batch
                        )
                        count += len(batch)
                        task.advance(len(batch))
                        batch.clear()
            except _ERRORS as exc:
                raise feed_error(
                    file.path, exc, "expected the tracker's data/CVE/list or data/DSA/list"
                ) from exc
            conn.executemany("INSERT OR REPLACE INTO distro_fix VALUES (?,?,?,?,?,?,?,?)", batch)
            count += len(batch)
        task.finish()
        if count == 0:
            raise VulnDbError(f"{files[0].path}: no package lines in this data/CVE/list text")
        tally.stored = count
        tally.save(conn)
        for line in tally.notes("Debian CVE list"):
            progress.note(line)
        last = files[-1]
        date = last.remote.last_modified if last.remote else None
        if date is None:
            date = datetime.fromtimestamp(last.path.stat().st_mtime, UTC).strftime("%Y-%m-%d")
        record_source(conn, NAME, date, f"{tally.read} CVEs, {count} release entries")
        for file in files:
            if file.remote is not None:
                record_feed_file(conn, NAME, file.remote)


SOURCE = DebianListSource()
