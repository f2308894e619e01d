"""NVD CVE API 2.0 JSON feeds (yearly `nvdcve-2.0-YYYY.json.gz`, `modified`), and single records.

Feeds are streamed with ijson (a 400 MB year file never sits in memory as one object) and parsed
in worker processes, one file each; the main process merges rows into the store, keeping for
every CVE the copy with the newest `lastModified`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import ijson

from flanscan._errors import VulnDbError
from flanscan._vulndb._files import (
    READ_ERRORS,
    ContentProbe,
    feed_error,
    limit_depth,
    open_feed,
    probe_file,
)
from flanscan._vulndb._jsonstream import iter_array_items
from flanscan._vulndb._progress import Progress
from flanscan._vulndb.sources import (
    Fetcher,
    ImportFile,
    RemoteFile,
    SourceState,
    record_feed_file,
    record_source,
)

NAME = "nvd"
DEFAULT_URL = "https://nvd.nist.gov/feeds/json/cve/2.0/"
FIRST_YEAR = 2002
MODIFIED = "modified"
# The `modified` feed covers the last 8 days; beyond 7 days since the last NVD import the
# yearly feeds that changed are downloaded again.
MODIFIED_FEED_DAYS = 7
# Files below this size are parsed in the main process (no worker start-up cost).
PARALLEL_MIN_BYTES = 8 * 1024 * 1024

_CVSS_KEYS = (
    ("cvssMetricV40", "4.0"),
    ("cvssMetricV31", "3.1"),
    ("cvssMetricV30", "3.0"),
    ("cvssMetricV2", "2.0"),
)
_UNESCAPE = re.compile(r"\\(.)")
_BATCH = 500


def feed_name(feed: str) -> str:
    """`2024` -> `nvdcve-2.0-2024.json.gz`."""
    return f"nvdcve-2.0-{feed}.json.gz"


def meta_name(feed: str) -> str:
    return f"nvdcve-2.0-{feed}.meta"


# --------------------------------------------------------------------------- record -> row


def cpe_vendor_product(criteria: str) -> tuple[str, str] | None:
    """Vendor and product of a CPE 2.3 formatted string, unescaped and lower-cased."""
    if "\\" not in criteria:
        parts = criteria.split(":", 5)
    else:
        parts = re.split(r"(?<!\\):", criteria, maxsplit=5)
    if len(parts) < 5 or parts[0] != "cpe" or parts[1] != "2.3":
        return None
    vendor, product = parts[3], parts[4]
    if "\\" in vendor or "\\" in product:
        vendor, product = _UNESCAPE.sub(r"\1", vendor), _UNESCAPE.sub(r"\1", product)
    return vendor.lower(), product.lower()


def normalize_name(name: str) -> str:
    """Vendor/product names as the index stores them: CPE escapes removed, lower case."""
    return _UNESCAPE.sub(r"\1", name).lower()


def _walk_cpe_matches(configurations: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for config in configurations:
        for node in config.get("nodes") or ():
            yield from node.get("cpeMatch") or ()


def configuration_products(configurations: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    """Every (vendor, product) named by any cpeMatch, vulnerable or platform."""
    criteria = {str(m.get("criteria", "")) for m in _walk_cpe_matches(configurations)}
    pairs: set[tuple[str, str]] = set()
    for text in criteria:
        pair = cpe_vendor_product(text)
        if pair is not None:
            pairs.add(pair)
    return pairs


def primary_cvss(
    metrics: dict[str, Any],
) -> tuple[float, str, str | None, str | None] | None:
    """(score, version, vector, source) of the NVD primary score.

    `Primary` entries first, newest CVSS version first (4.0, 3.1, 3.0, 2.0); then `Secondary`
    entries in the same order; then any entry.
    """
    for wanted in ("Primary", "Secondary", None):
        for key, version in _CVSS_KEYS:
            for metric in metrics.get(key) or ():
                if wanted is not None and metric.get("type") != wanted:
                    continue
                data = metric.get("cvssData") or {}
                score = data.get("baseScore")
                if score is None:
                    continue
                return (
                    float(score),
                    str(data.get("version") or version),
                    data.get("vectorString"),
                    metric.get("source"),
                )
    return None


def cwe_ids(weaknesses: Iterable[dict[str, Any]]) -> list[str]:
    """CWE ids (`CWE-79`), primary weaknesses first; NVD-CWE-Other/noinfo left out."""
    ordered = sorted(weaknesses, key=lambda w: w.get("type") != "Primary")
    out: list[str] = []
    for weakness in ordered:
        for desc in weakness.get("description") or ():
            value = str(desc.get("value", ""))
            if value.startswith("CWE-") and value not in out:
                out.append(value)
    return out


def english_summary(descriptions: Iterable[dict[str, Any]]) -> str | None:
    for desc in descriptions:
        if desc.get("lang") == "en":
            return str(desc.get("value", "")) or None
    return None


def pack_json(value: Any) -> bytes:
    """Compact JSON, zlib-compressed: how configurations and affected data are stored."""
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 6)


def unpack_json(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


# A parsed record: ("C", id, last_modified, row tuple, products, affected blob) or
# ("R", id, last_modified) for a rejected one. Plain tuples: they cross process boundaries.
ParsedRecord = tuple[Any, ...]


def parse_record(cve: dict[str, Any]) -> ParsedRecord:
    """Turn one CVE 2.0 `cve` object into what the store keeps."""
    cve_id = cve.get("id")
    last_modified = cve.get("lastModified")
    if not isinstance(cve_id, str) or not cve_id.startswith("CVE-") or not last_modified:
        raise ValueError(f"not a CVE 2.0 record (id {cve_id!r}, lastModified {last_modified!r})")
    status = cve.get("vulnStatus")
    if status == "Rejected":
        return ("R", cve_id, last_modified)
    published = cve.get("published")
    cvss = primary_cvss(cve.get("metrics") or {})
    configurations = cve.get("configurations") or None
    products = sorted(configuration_products(configurations)) if configurations else []
    affected = cve.get("affected")
    row = (
        cve_id,
        published[:10] if isinstance(published, str) else None,
        last_modified,
        status,
        english_summary(cve.get("descriptions") or ()),
        cvss[0] if cvss else None,
        cvss[1] if cvss else None,
        cvss[2] if cvss else None,
        cvss[3] if cvss else None,
        " ".join(cwe_ids(cve.get("weaknesses") or ())) or None,
        pack_json(configurations) if configurations else None,
    )
    return ("C", cve_id, last_modified, row, products, pack_json(affected) if affected else None)


# --------------------------------------------------------------------------- file parsing


@dataclass(frozen=True)
class ParsedFile:
    path: Path
    records: list[ParsedRecord]
    timestamp: str | None  # the feed's generation time, when it says


def _check_feed_header(probe: ContentProbe) -> None:
    top = probe.keys_at("")
    if "CVE_Items" in top or "CVE_data_format" in top or "CVE_data_version" in top:
        fmt = probe.value_at("CVE_data_version") or probe.value_at("CVE_data_format")
        raise VulnDbError(
            f"{probe.path}: NVD JSON 1.x feed (CVE_data_version {fmt}); Flan Scan reads NVD "
            "CVE API 2.0 feeds (nvdcve-2.0-*.json.gz)"
        )
    fmt, version = probe.value_at("format"), probe.value_at("version")
    if (fmt is not None and fmt != "NVD_CVE") or (version is not None and str(version) != "2.0"):
        raise VulnDbError(
            f"{probe.path}: feed format {fmt} version {version}, expected NVD_CVE version 2.0 "
            "(nvdcve-2.0-*.json.gz)"
        )


def _check_records_container(probe: ContentProbe) -> None:
    """`vulnerabilities` must be a list: anything else would import nothing, silently."""
    events = probe.json_events
    for i, (prefix, event, value) in enumerate(events[:-1]):
        if prefix == "" and event == "map_key" and value == "vulnerabilities":
            kind = events[i + 1][1]
            if kind != "start_array":
                shown = {"start_map": "an object", "null": "null"}.get(kind, f"a {kind}")
                raise VulnDbError(
                    f"{probe.path}: `vulnerabilities` is {shown}, not a list of records: not an "
                    "NVD CVE 2.0 feed; download it again"
                )
            return


def _check_record_count(probe: ContentProbe, count: int) -> None:
    """The feed's own count (resultsPerPage, else totalResults) must match what it holds: a
    mismatch means a cut or altered file, never imported silently."""
    said = probe.value_at("resultsPerPage")
    field = "resultsPerPage"
    if said is None:
        said, field = probe.value_at("totalResults"), "totalResults"
    if isinstance(said, int) and not isinstance(said, bool) and said != count:
        raise VulnDbError(
            f"{probe.path}: {field} says {said} records but the file holds {count}: cut or "
            "altered; download it again (nothing was imported)"
        )


def _record_prefix(probe: ContentProbe) -> tuple[str, str | None]:
    """Where records are in this file: (ijson prefix, key of the cve object inside each item)."""
    top = probe.keys_at("")
    if "cve" in top and "id" not in top:
        return "cve", None  # single {"cve": {...}}
    if "vulnerabilities" in top:
        return "vulnerabilities.item", "cve"
    if probe.json_events and probe.json_events[0][1] == "start_array":
        return "item", "cve" if "cve" in probe.keys_at("item") else None
    return "", None  # a bare cve object


class _HashingReader:
    """A read() pass-through that hashes what the parser reads (no second decompression)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data


def parse_file(path: Path, expect_sha256: str | None = None) -> ParsedFile:
    """Parse one NVD file (feed, single record, or list of records), streaming.

    With `expect_sha256` (from a `.meta`), the decompressed content is hashed while it is read.
    """
    probe = probe_file(path)
    _check_feed_header(probe)
    _check_records_container(probe)
    prefix, inner = _record_prefix(probe)
    records: list[ParsedRecord] = []
    try:
        with open_feed(path) as stream:
            reader = _HashingReader(stream) if expect_sha256 else stream
            items = None
            if prefix == "vulnerabilities.item":
                items = iter_array_items(reader, "vulnerabilities")  # the fast path for feeds
                if items is None:  # the array is not in the head: start over with ijson
                    reader = _reopen(stream, expect_sha256)
            if items is None:
                # Depth-checked events in small buffers (see probe_file): ijson's prefixes
                # grow with the depth, so deep nesting would cost memory quadratically.
                events = limit_depth(ijson.parse(reader, use_float=True, buf_size=4096))
                items = ijson.items(events, prefix, use_float=True)
            for item in items:
                cve = item.get(inner) if inner is not None and "id" not in item else item
                if not isinstance(cve, dict):
                    raise ValueError("record without a `cve` object")
                records.append(parse_record(cve))
            if isinstance(reader, _HashingReader):
                while reader.read(1 << 20):
                    pass
                if reader.digest.hexdigest() != expect_sha256 and not _file_hash_is(
                    path, expect_sha256
                ):
                    raise VulnDbError(f"{path}: sha256 does not match the .meta file beside it")
    except VulnDbError:
        raise
    except READ_ERRORS as exc:
        raise feed_error(path, exc) from exc
    if prefix == "vulnerabilities.item":
        _check_record_count(probe, len(records))
    timestamp = probe.value_at("timestamp")
    return ParsedFile(path, records, str(timestamp) if timestamp else None)


def _reopen(stream: IO[bytes], expect_sha256: str | None) -> _HashingReader | IO[bytes]:
    stream.seek(0)
    return _HashingReader(stream) if expect_sha256 else stream


def _file_hash_is(path: Path, expected: str | None) -> bool:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == expected


def _parse_in_worker(path: str, expect_sha256: str | None) -> ParsedFile:
    return parse_file(Path(path), expect_sha256)


def parse_files(files: Sequence[ImportFile], progress: Progress) -> Iterator[ParsedFile]:
    """Parse files: small ones here, big ones in worker processes (one file each).

    Results come back in no particular order (the merge keeps the newest copy of each CVE
    whatever the order). Only `workers` files are in flight while one is being merged, so
    memory holds a few files' worth of records, never the whole feed set.
    """
    sizes = {f.path: f.path.stat().st_size for f in files}
    task = progress.task("Reading NVD feeds", total=sum(sizes.values()))
    small = [f for f in files if sizes[f.path] < PARALLEL_MIN_BYTES]
    big = [f for f in files if sizes[f.path] >= PARALLEL_MIN_BYTES]
    workers = min(len(big), os.cpu_count() or 1)
    try:
        if workers <= 1:
            small, big = small + big, []
        for file in small:
            yield parse_file(file.path, file.expect_sha256)
            task.advance(sizes[file.path])
        if not big:
            return
        # spawn, not fork: the parent may run a progress-bar thread.
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            todo = iter(big)
            window: collections.deque[tuple[ImportFile, concurrent.futures.Future[ParsedFile]]] = (
                collections.deque()
            )

            def submit(file: ImportFile) -> None:
                window.append(
                    (file, pool.submit(_parse_in_worker, str(file.path), file.expect_sha256))
                )

            for file in itertools.islice(todo, workers):
                submit(file)
            try:
                while window:
                    file, future = window.popleft()
                    result = future.result()
                    following = next(todo, None)
                    if following is not None:
                        submit(following)
                    yield result
                    task.advance(sizes[file.path])
            finally:
                for _, future in window:
                    future.cancel()
    finally:
        task.finish()


# --------------------------------------------------------------------------- merging


def _chunks(items: Sequence[ParsedRecord], size: int) -> Iterator[Sequence[ParsedRecord]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def merge_records(conn: sqlite3.Connection, records: Sequence[ParsedRecord]) -> tuple[int, int]:
    """Upsert parsed records, newest `lastModified` wins; returns (stored, rejected) counts."""
    stored = rejected = 0
    # One copy per CVE (the newest; the later one on a tie) so each chunk has unique ids.
    latest: dict[str, ParsedRecord] = {}
    for rec in records:
        prev = latest.get(rec[1])
        if prev is None or rec[2] >= prev[2]:
            latest[rec[1]] = rec
    records = list(latest.values())
    for chunk in _chunks(records, _BATCH):
        ids = [r[1] for r in chunk]
        marks = ",".join("?" * len(ids))
        existing = {
            cid: (lm, blob)
            for cid, lm, blob in conn.execute(
                f"SELECT id, last_modified, configurations FROM cve WHERE id IN ({marks})", ids
            )
        }
        tombs = dict(
            conn.execute(f"SELECT id, last_modified FROM cve_rejected WHERE id IN ({marks})", ids)
        )
        cve_rows: list[tuple[Any, ...]] = []
        product_rows: list[tuple[str, str, str]] = []
        affected_rows: list[tuple[str, str, bytes]] = []
        gone: list[tuple[str]] = []
        for rec in chunk:
            kind, cve_id, last_modified = rec[0], rec[1], rec[2]
            old = existing.get(cve_id)
            if old is not None and old[0] > last_modified:
                continue
            tomb = tombs.get(cve_id)
            if tomb is not None and tomb > last_modified:
                continue
            if old is not None:
                _delete_products(conn, cve_id, old[1])
            if kind == "R":
                rejected += 1
                if old is not None:
                    gone.append((cve_id,))
                conn.execute(
                    "INSERT OR REPLACE INTO cve_rejected(id, last_modified) VALUES (?,?)",
                    (cve_id, last_modified),
                )
                existing.pop(cve_id, None)
                continue
            stored += 1
            cve_rows.append(rec[3])
            product_rows.extend((v, p, cve_id) for v, p in rec[4])
            if rec[5] is not None:
                affected_rows.append((cve_id, NAME, rec[5]))
            elif old is not None:
                conn.execute("DELETE FROM affected WHERE cve_id = ? AND source = ?", (cve_id, NAME))
            if tomb is not None:
                conn.execute("DELETE FROM cve_rejected WHERE id = ?", (cve_id,))
            existing[cve_id] = (last_modified, rec[3][10])
        if gone:
            conn.executemany("DELETE FROM cve WHERE id = ?", gone)
            # Only the NVD's own row: other sources' data goes with their own rejections.
            conn.executemany(f"DELETE FROM affected WHERE cve_id = ? AND source = '{NAME}'", gone)
        conn.executemany(
            "INSERT OR REPLACE INTO cve(id, published, last_modified, status, summary, cvss_score,"
            " cvss_version, cvss_vector, cvss_source, cwes, configurations)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            cve_rows,
        )
        conn.executemany(
            "INSERT OR IGNORE INTO cve_product(vendor, product, cve_id) VALUES (?,?,?)",
            product_rows,
        )
        conn.executemany(
            "INSERT OR REPLACE INTO affected(cve_id, source, data) VALUES (?,?,?)", affected_rows
        )
    return stored, rejected


def _delete_products(conn: sqlite3.Connection, cve_id: str, blob: bytes | None) -> None:
    if blob is None:
        return
    pairs = configuration_products(unpack_json(blob))
    conn.executemany(
        "DELETE FROM cve_product WHERE vendor = ? AND product = ? AND cve_id = ?",
        [(v, p, cve_id) for v, p in pairs],
    )


# --------------------------------------------------------------------------- the source


def parse_meta(text: str) -> dict[str, str]:
    """An NVD `.meta` file: `key:value` lines (lastModifiedDate, size, gzSize, sha256)."""
    meta: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            meta[key.strip()] = value.strip()
    return meta


def _years() -> list[str]:
    return [str(y) for y in range(FIRST_YEAR, datetime.now(UTC).year + 1)]


def _age_days(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds() / 86400


class NvdSource:
    name = NAME
    title = "NVD CVE API 2.0 feeds"
    ddl = ""  # the cve tables are core tables (see _schema.py): the reader is built on them
    default_url = DEFAULT_URL
    url_env = "FLAN_NVD_URL"
    years: list[str] | None = None  # tests may narrow the yearly feeds; None = 2002..this year

    def sniff(self, probe: ContentProbe) -> bool:
        top = probe.keys_at("")
        if "_annotation" in top:
            return False  # an anchore override: NVD-shaped, but another source's
        if {"CVE_Items", "CVE_data_format", "CVE_data_version"} & set(top):
            return True  # NVD 1.x: ours, and refused with a clear message at import
        if probe.value_at("format") == "NVD_CVE" or "cve" in top:
            return True
        if "vulnerabilities" in top and "cve" in probe.keys_at("vulnerabilities.item"):
            return True
        if "id" in top and str(probe.value_at("id") or "").startswith("CVE-"):
            return bool({"sourceIdentifier", "vulnStatus", "published"} & set(top))
        return "cve" in probe.keys_at("item")

    def plan(self, fetcher: Fetcher, base_url: str, state: SourceState) -> list[RemoteFile]:
        base = base_url if base_url.endswith("/") else base_url + "/"
        years = self.years if self.years is not None else _years()
        have_all = all(feed_name(y) in state.files for y in years)
        newest = max((f.imported_at for f in state.files.values()), default=None)
        age = _age_days(newest)
        feeds = [MODIFIED]
        if not (have_all and age is not None and age < MODIFIED_FEED_DAYS):
            feeds = [*years, MODIFIED]
        plan: list[RemoteFile] = []
        for feed in feeds:
            meta_url = base + meta_name(feed)
            meta = parse_meta(fetcher.get_text(meta_url))
            sha = meta.get("sha256", "").lower() or None
            if sha is None:
                raise VulnDbError(f"{meta_url}: no sha256 line; is this an NVD .meta file?")
            have = state.files.get(feed_name(feed))
            if have is not None and have.sha256 == sha:
                continue
            size = meta.get("gzSize")
            plan.append(
                RemoteFile(
                    source=NAME,
                    name=feed_name(feed),
                    url=base + feed_name(feed),
                    sha256=sha,
                    last_modified=meta.get("lastModifiedDate"),
                    size=int(size) if size and size.isdigit() else None,
                )
            )
        return plan

    def import_files(
        self, conn: sqlite3.Connection, files: Sequence[ImportFile], progress: Progress
    ) -> None:
        ordered = list(files)
        by_path = {f.path: f for f in ordered}
        newest: str | None = None
        stored = rejected = 0
        for parsed in parse_files(ordered, progress):
            s, r = merge_records(conn, parsed.records)
            stored, rejected = stored + s, rejected + r
            stamp = parsed.timestamp or max((rec[2] for rec in parsed.records), default=None)
            if stamp and (newest is None or stamp > newest):
                newest = stamp
            remote = by_path[parsed.path].remote
            if remote is not None:
                record_feed_file(conn, NAME, remote)
        progress.note(f"NVD: {stored} records stored, {rejected} rejected kept out")
        record_source(conn, NAME, newest)


SOURCE = NvdSource()
