"""Reading the vulnerability database: the `VulnLookup` the matcher uses, and its status."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from flanscan._errors import VulnDbError
from flanscan._lookup import AffectedData, CveConfigurations, UnstableFix
from flanscan._model import CvssScore, KevEntry, VulnDbSummary, Vulnerability
from flanscan._vulndb._affected import SourceFigures, source_figures
from flanscan._vulndb._schema import SCHEMA_VERSION, schema_version
from flanscan._vulndb.sources import REGISTRY, load_source
from flanscan._vulndb.sources.nvd import normalize_name, unpack_json

STALE_DAYS = 7
NVD_URL = "https://nvd.nist.gov/vuln/detail/"
_CANDIDATE_CACHE = 4096
_IN_CHUNK = 500
_SUMMARY_CACHE = 200_000

BUILD_HINT = "build it with `flan db update` (online) or `flan db import FILES` (offline)"


def _corrupt(path: Path) -> bool:
    """A file with SQLite's header that SQLite cannot read: damaged, not merely foreign."""
    try:
        with path.open("rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return False
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return True
    except OSError:
        return False
    return False


@dataclass(frozen=True)
class SourceStatus:
    name: str
    title: str
    data_date: str | None
    imported_at: str
    detail: str | None = None
    figures: SourceFigures = field(default_factory=SourceFigures)


@dataclass(frozen=True)
class DbStatus:
    """Everything `flan db status` prints."""

    path: Path
    size_bytes: int
    cve_count: int
    without_configurations: int  # awaiting NVD analysis: stored, never matched
    rejected_count: int
    products: int  # distinct vendor:product pairs in the index
    kev_count: int
    epss_count: int
    sources: tuple[SourceStatus, ...]
    built_at: str | None
    age_days: float | None  # age of the NVD data (or of the build when no NVD data)
    schema_version: int

    @property
    def stale(self) -> bool:
        return self.age_days is None or self.age_days > STALE_DAYS


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _ransomware(value: str | None) -> bool | None:
    # CISA writes "Known" or "Unknown" (= not known to be used in ransomware campaigns).
    if value is None:
        return None
    return value.strip().lower() == "known"


class VulnDb:
    """A read-only vulnerability database; implements `flanscan._lookup.VulnLookup`.

    Returned configurations are shared between calls (cached): callers must not modify them.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._candidates: dict[tuple[str, str], tuple[CveConfigurations, ...]] = {}
        self._vulns: dict[str, Vulnerability] = {}
        self._affected: dict[tuple[str, ...], tuple[AffectedData, ...]] = {}
        self._unstable_packages: tuple[str, ...] | None = None
        self._descriptions: dict[str, tuple[tuple[str, str], ...]] = {}
        self._tables: dict[str, bool] = {}
        self._cve5_summaries: dict[str, str | None] = {}

    @classmethod
    def open(cls, path: str | Path) -> VulnDb:
        """Open the database at `path` read-only; VulnDbError if missing, foreign or outdated."""
        path = Path(path)
        if not path.is_file():
            raise VulnDbError(f"vulnerability database {path} does not exist: {BUILD_HINT}")
        uri = f"{path.resolve().as_uri()}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            version = schema_version(conn)
        except sqlite3.Error as exc:
            raise VulnDbError(f"{path}: cannot read the vulnerability database ({exc})") from exc
        if version != SCHEMA_VERSION:
            conn.close()
            if version is not None:
                what = f"has schema version {version}, this Flan Scan reads {SCHEMA_VERSION}"
            elif _corrupt(path):
                what = "is corrupt (a damaged SQLite file)"
            else:
                what = "is not a Flan Scan vulnerability database"
            raise VulnDbError(f"{path} {what}: re{BUILD_HINT}")
        return cls(conn, path)

    @property
    def connection(self) -> sqlite3.Connection:
        """The read-only connection, for sources' own tables (e.g. a distribution tracker)."""
        return self._conn

    def has_table(self, name: str) -> bool:
        known = self._tables.get(name)
        if known is None:
            row = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
            known = self._tables[name] = row is not None
        return known

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> VulnDb:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ VulnLookup

    def candidates(self, vendor: str, product: str) -> Sequence[CveConfigurations]:
        """CVEs whose NVD configurations name `vendor:product` in any cpeMatch.

        Names are compared as the index stores them: lower case, CPE backslash escapes removed.
        CVEs without configurations (awaiting analysis) are never returned.
        """
        key = (normalize_name(vendor), normalize_name(product))
        hit = self._candidates.get(key)
        if hit is not None:
            return hit
        rows = self._conn.execute(
            "SELECT c.id, c.configurations FROM cve_product p JOIN cve c ON c.id = p.cve_id"
            " WHERE p.vendor = ? AND p.product = ? AND c.configurations IS NOT NULL"
            " ORDER BY c.id",
            key,
        ).fetchall()
        result = tuple(CveConfigurations(cid, unpack_json(blob)) for cid, blob in rows)
        if len(self._candidates) >= _CANDIDATE_CACHE:
            self._candidates.clear()
        self._candidates[key] = result
        return result

    def affected_candidates(self, names: Sequence[str]) -> Sequence[AffectedData]:
        """CVE 5 and override statements indexed under any of `names` (see `_affected.py`)."""
        key = tuple(sorted(set(names)))
        hit = self._affected.get(key)
        if hit is not None:
            return hit
        if not self.has_table("affected_name"):
            self._affected[key] = ()
            return ()
        marks = ",".join("?" * len(key))
        rows = self._conn.execute(
            "SELECT DISTINCT a.cve_id, a.source, a.data FROM affected_name n"
            " JOIN affected a ON a.cve_id = n.cve_id AND a.source = n.source"
            f" WHERE n.name IN ({marks}) ORDER BY a.cve_id, a.source",
            key,
        ).fetchall()
        result = tuple(AffectedData(c, s, unpack_json(d)) for c, s, d in rows)
        for item in result:  # kept for vulnerabilities(): CVEs the NVD does not have yet
            if item.source == "cve5" and len(self._cve5_summaries) < _SUMMARY_CACHE:
                summary = item.data.get("summary")
                self._cve5_summaries[item.cve_id] = summary if isinstance(summary, str) else None
        if len(self._affected) >= _CANDIDATE_CACHE:
            self._affected.clear()
        self._affected[key] = result
        return result

    def description_candidates(self, product: str) -> Sequence[tuple[str, str]]:
        """(CVE id, description) of CVEs without NVD configurations whose description names
        the registry product `product` (the `possible` tier)."""
        hit = self._descriptions.get(product)
        if hit is not None:
            return hit
        if not self.has_table("description_product"):
            return ()
        out: list[tuple[str, str]] = []
        for cve_id, summary, blob in self._conn.execute(
            "SELECT d.cve_id, c.summary, a.data FROM description_product d"
            " LEFT JOIN cve c ON c.id = d.cve_id"
            " LEFT JOIN affected a ON a.cve_id = d.cve_id AND a.source = 'cve5'"
            "   AND c.id IS NULL"
            " WHERE d.product = ? ORDER BY d.cve_id",
            (product,),
        ):
            text = summary if isinstance(summary, str) else None
            if text is None and blob is not None:
                found = unpack_json(blob).get("summary")
                text = found if isinstance(found, str) else None
            if text:
                out.append((cve_id, text))
        if len(self._descriptions) >= _CANDIDATE_CACHE:
            self._descriptions.clear()
        self._descriptions[product] = tuple(out)
        return self._descriptions[product]

    def debian_packages(self) -> Sequence[str]:
        """Source packages with Debian unstable rows (from the tracker's data/CVE/list)."""
        if self._unstable_packages is None:
            self._unstable_packages = (
                tuple(
                    p
                    for (p,) in self._conn.execute(
                        "SELECT DISTINCT package FROM distro_fix"
                        " WHERE distribution = 'debian' AND release = 'sid'"
                    )
                )
                if self.has_table("distro_fix")
                else ()
            )
        return self._unstable_packages

    def unstable_fixes(self, packages: Sequence[str]) -> Sequence[UnstableFix]:
        """Debian unstable's fixed versions (or "0", never affected) for these packages."""
        if not packages or not self.has_table("distro_fix"):
            return ()
        marks = ",".join("?" * len(packages))
        return tuple(
            UnstableFix(c, p, f, n)
            for c, p, f, n in self._conn.execute(
                "SELECT cve_id, package, fixed_version, note FROM distro_fix"
                " WHERE distribution = 'debian' AND release = 'sid'"
                f" AND package IN ({marks}) ORDER BY cve_id",
                list(packages),
            )
        )

    def vulnerabilities(self, cve_ids: Iterable[str]) -> dict[str, Vulnerability]:
        """Scores, summary, CWE, KEV and EPSS for the given CVE ids that exist."""
        wanted = {c.strip().upper() for c in cve_ids}
        out = {c: self._vulns[c] for c in wanted if c in self._vulns}
        missing = sorted(wanted - out.keys())
        for start in range(0, len(missing), _IN_CHUNK):
            chunk = missing[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                "SELECT c.id, c.summary, c.published, c.cvss_score, c.cvss_version,"
                " c.cvss_vector, c.cvss_source, c.cwes, k.date_added, k.known_ransomware_use,"
                " k.due_date, k.vulnerability_name, k.required_action, e.score, e.percentile"
                " FROM cve c LEFT JOIN kev k ON k.cve_id = c.id"
                " LEFT JOIN epss e ON e.cve_id = c.id"
                f" WHERE c.id IN ({marks})",
                chunk,
            ):
                vuln = _vulnerability(row)
                self._vulns[vuln.id] = out[vuln.id] = vuln
            self._add_cve5_only(chunk, out)
            self._add_ssvc(chunk, out)
        return out

    def _add_cve5_only(self, chunk: list[str], out: dict[str, Vulnerability]) -> None:
        """CVEs the NVD does not have yet, known from their CVE 5 record."""
        absent = [c for c in chunk if c not in out]
        for cve_id in [c for c in absent if c in self._cve5_summaries]:
            vuln = Vulnerability(
                id=cve_id,
                summary=self._cve5_summaries[cve_id],
                url=NVD_URL + cve_id,
                source="cve5",
            )
            self._vulns[cve_id] = out[cve_id] = vuln
        absent = [c for c in absent if c not in out]
        if not absent or not self.has_table("affected_record"):
            return
        marks = ",".join("?" * len(absent))
        for cve_id, blob in self._conn.execute(
            f"SELECT cve_id, data FROM affected WHERE source = 'cve5' AND cve_id IN ({marks})",
            absent,
        ):
            data = unpack_json(blob)
            summary = data.get("summary") if isinstance(data, dict) else None
            vuln = Vulnerability(
                id=cve_id,
                summary=summary if isinstance(summary, str) else None,
                url=NVD_URL + cve_id,
                source="cve5",
            )
            self._vulns[cve_id] = out[cve_id] = vuln

    def _add_ssvc(self, chunk: list[str], out: dict[str, Vulnerability]) -> None:
        if not self.has_table("ssvc"):
            return
        marks = ",".join("?" * len(chunk))
        for cve_id, exploitation, automatable in self._conn.execute(
            f"SELECT cve_id, exploitation, automatable FROM ssvc WHERE cve_id IN ({marks})", chunk
        ):
            if cve_id in out:
                vuln = dataclasses.replace(
                    out[cve_id], ssvc_exploitation=exploitation, ssvc_automatable=automatable
                )
                self._vulns[cve_id] = out[cve_id] = vuln

    # ------------------------------------------------------------------ status

    def summary(self) -> VulnDbSummary:
        """What a report says about the data it was built with."""
        built = self._conn.execute("SELECT value FROM meta WHERE key = 'built_at'").fetchone()
        sources = self._sources(figures=False)
        return VulnDbSummary(
            path=str(self.path),
            cve_count=int(self._conn.execute("SELECT count(*) FROM cve").fetchone()[0]),
            sources=tuple((s.name, s.data_date or s.imported_at) for s in sources),
            built_at=built[0] if built else None,
            age_days=self._age_days(sources, built[0] if built else None),
        )

    def age_days(self) -> float | None:
        """Age of the NVD data (or of the build when it has no NVD data) in days; None when
        the database says neither."""
        built = self._conn.execute("SELECT value FROM meta WHERE key = 'built_at'").fetchone()
        return self._age_days(self._sources(figures=False), built[0] if built else None)

    @staticmethod
    def _age_days(sources: list[SourceStatus], built_at: str | None) -> float | None:
        nvd = next((s for s in sources if s.name == "nvd"), None)
        reference = _parse_time(nvd.data_date if nvd else None) or _parse_time(built_at)
        return (datetime.now(UTC) - reference).total_seconds() / 86400 if reference else None

    def _sources(self, *, figures: bool = True) -> list[SourceStatus]:
        # The per-source figures count over the whole database (~0.5 s on a full one): only
        # `flan db status` shows them, so a report's summary and age checks skip them.
        sources = []
        for name, data_date, imported_at, detail in self._conn.execute(
            "SELECT name, data_date, imported_at, detail FROM sources"
        ):
            title = load_source(name).title if name in REGISTRY else name
            counted = source_figures(self._conn, name) if figures else SourceFigures()
            sources.append(SourceStatus(name, title, data_date, imported_at, detail, counted))
        order = list(REGISTRY)
        sources.sort(key=lambda s: (order.index(s.name) if s.name in order else 99, s.name))
        return sources

    def status(self) -> DbStatus:
        """Counts, sources with their dates, size and age."""
        conn = self._conn

        def count(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        meta = dict(conn.execute("SELECT key, value FROM meta"))
        sources = self._sources()
        age = self._age_days(sources, meta.get("built_at"))
        return DbStatus(
            path=self.path,
            size_bytes=self.path.stat().st_size,
            cve_count=count("SELECT count(*) FROM cve"),
            without_configurations=count("SELECT count(*) FROM cve WHERE configurations IS NULL"),
            rejected_count=count("SELECT count(*) FROM cve_rejected"),
            products=count(
                "SELECT count(*) FROM (SELECT DISTINCT vendor, product FROM cve_product)"
            ),
            kev_count=count("SELECT count(*) FROM kev"),
            epss_count=count("SELECT count(*) FROM epss"),
            sources=tuple(sources),
            built_at=meta.get("built_at"),
            age_days=age,
            schema_version=int(meta.get("schema_version", 0)),
        )


def _vulnerability(row: tuple[object, ...]) -> Vulnerability:
    (cid, summary, published, score, version, vector, cvss_source, cwes,
     kev_added, ransomware, due, kev_name, action, epss, percentile) = row  # fmt: skip
    cvss = None
    if score is not None:
        cvss = CvssScore(
            score=float(score),  # type: ignore[arg-type]
            version=str(version),
            vector=vector if isinstance(vector, str) else None,
            source=cvss_source if isinstance(cvss_source, str) else None,
        )
    kev = None
    if kev_added is not None:
        kev = KevEntry(
            date_added=str(kev_added),
            known_ransomware_use=_ransomware(ransomware if isinstance(ransomware, str) else None),
            due_date=due if isinstance(due, str) else None,
            vulnerability_name=kev_name if isinstance(kev_name, str) else None,
            required_action=action if isinstance(action, str) else None,
        )
    cve_id = str(cid)
    return Vulnerability(
        id=cve_id,
        summary=summary if isinstance(summary, str) else None,
        published=published if isinstance(published, str) else None,
        cvss=cvss,
        cwes=tuple(str(cwes).split()) if cwes else (),
        kev=kev,
        epss=float(epss) if epss is not None else None,  # type: ignore[arg-type]
        epss_percentile=float(percentile) if percentile is not None else None,  # type: ignore[arg-type]
        url=NVD_URL + cve_id,
        source="nvd",
    )
