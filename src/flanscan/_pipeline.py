"""Wires the stages together: saved Nmap XML -> findings -> Report -> files, history, alerts.

The CLI commands `flan scan`, `flan report` and `flan merge` call these functions; nothing here
prints. Every stage works from files a user can keep, so a report can be rebuilt later.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from flanscan._errors import (
    FlanError,
    UsageError,
    VulnDbError,
    db_failure,
)
from flanscan._model import (
    ChangeSummary,
    Finding,
    HostObservation,
    Location,
    Report,
    ScanSummary,
    ServiceObservation,
    Severity,
    SourceConfidence,
    VulnDbSummary,
)
from flanscan._safefile import atomic_output
from flanscan._status import ExitStatus, RunOutcome

if TYPE_CHECKING:
    from flanscan._records import ReportInputs
    from flanscan._scopecheck import ScopeCheck
    from flanscan._suppress import SuppressionSet
    from flanscan._vulndb import VulnDb

Analyzer = Callable[[HostObservation, ServiceObservation], Sequence[Finding]]

FAIL_ON_CHOICES = ("critical", "high", "medium", "kev")
CONFIDENCE_CHOICES = ("high", "medium", "possible")


DEFAULT_MAX_DB_AGE = 7


@dataclass(frozen=True)
class ReportOptions:
    """How to turn a run's XML into reports (shared by `flan scan`, `flan report`, `flan merge`)."""

    formats: tuple[str, ...] = ("html", "json")
    db_path: Path | None = None  # None: the default location (FLAN_DB or the user cache dir)
    use_db: bool = True
    suppressions: Path | None = None
    show_product_only: bool = False
    history: str | None = None  # path or postgresql:// URL; None: next to the results
    record_history: bool = True
    notify: tuple[str, ...] = ()
    notify_min_severity: str = "high"
    fail_on: str | None = None
    # Findings below this source confidence are left out of reports, alerts and --fail-on.
    min_confidence: str = "medium"
    # Findings below this severity (unknown severity is kept) likewise; None: all.
    min_severity: str | None = None
    # Vulnerability data older than this many days is stale: a warning, and --fail-on refuses.
    max_db_age: int = DEFAULT_MAX_DB_AGE
    # The options the user set (by parameter name), not left at their defaults: a rebuilt
    # report takes the others from the run's run.json.
    given: frozenset[str] = frozenset()


NO_DB_NOTE = (
    "no vulnerability database available: services are listed without CVEs; "
    "run `flan db update` (online) or `flan db import FILES` (offline) to build one"
)


def open_vulndb(options: ReportOptions) -> tuple[VulnDb | None, str | None]:
    """Open the vulnerability DB if asked for and present; else None and a one-line note."""
    if not options.use_db:
        return None, "vulnerability matching disabled (--no-db)"
    from flanscan._vulndb import VulnDb, default_db_path

    path = options.db_path or default_db_path()
    if not path.exists():
        if options.db_path is not None:
            raise UsageError(
                f"vulnerability database {path} does not exist: "
                "build it with `flan db update` or `flan db import FILES`, or drop --db"
            )
        return None, NO_DB_NOTE
    return VulnDb.open(path), None


def stale_note(db: VulnDb, max_age: int) -> str | None:
    """The warning for data older than `max_age` days (or of unknown age), else None."""
    age = db.age_days()
    if age is not None and age <= max_age:
        return None
    how_old = f"{age:.0f} days old" if age is not None else "of unknown age"
    return (
        f"the vulnerability database {db.path} is {how_old} (--max-db-age {max_age}): findings "
        "published since are missing; run `flan db update` (or `flan db import FILES` offline)"
    )


def vulndb_message(report: Report) -> str:
    """The report's note on its vulnerability data, as a line for the user: with a database,
    a note is a warning (stale data, missing tracker data)."""
    return f"{'warning: ' if report.vulndb is not None else ''}{report.vulndb_note}"


def check_gate(options: ReportOptions) -> None:
    """--fail-on needs current vulnerability data: without a database, or with one older than
    --max-db-age, a gate would pass whatever the hosts run, so it is refused (exit 2)."""
    if options.fail_on is None:
        return
    if not options.use_db:
        raise UsageError("--fail-on with --no-db: no finding can reach the threshold; drop one")
    from flanscan._vulndb import VulnDb, default_db_path

    path = options.db_path or default_db_path()
    if not path.is_file():
        raise UsageError(
            f"--fail-on: no vulnerability database at {path}, so nothing could reach the "
            "threshold: build it with `flan db update` (or `flan db import FILES` offline), "
            "or point FLAN_DB or --db at one"
        )
    db = VulnDb.open(path)
    try:
        note = stale_note(db, options.max_db_age)
    finally:
        db.close()
    if note is not None:
        raise UsageError(f"--fail-on refused: {note}, or raise --max-db-age")


def check_report_options(options: ReportOptions) -> None:
    """Refuse bad report inputs (missing --db file, bad rules, unreachable --history, bad
    --notify URL or --fail-on, a --fail-on without current data) before a scan starts, so a
    mistake never costs a scan."""
    check_gate(options)
    if "pdf" in options.formats:
        from flanscan._extras import require_extra

        require_extra("pdf")  # before a scan, not after it
    if options.use_db and options.db_path is not None:
        db, _ = open_vulndb(options)
        if db is not None:
            db.close()
    if options.suppressions is not None:
        from flanscan._suppress import load_suppressions

        load_suppressions(options.suppressions)
    if options.record_history and options.history is not None:
        from flanscan._history import open_history

        open_history(options.history).close()  # unreachable or newer schema: say so now
    if options.notify:
        from flanscan._notify import check_notify_urls

        check_notify_urls(options.notify)
    _check_fail_on(options.fail_on)


def make_analyzer(
    db: VulnDb | None,
    suppressions: SuppressionSet | None,
    min_confidence: str = "medium",
    min_severity: str | None = None,
    untracked: set[tuple[str, str]] | None = None,
) -> Analyzer:
    """The per-service analysis: match, vulners results, distribution data, exceptions.

    Findings whose source confidence is below `min_confidence`, or whose (known) severity is
    below `min_severity`, are dropped here, so that no report, alert, history record or
    --fail-on check counts them. Distribution builds (distribution, release) whose tracker
    data the database lacks are added to `untracked`.
    """
    from flanscan._distro import DistributionMemo, tracker_for
    from flanscan._distro._banner import TRACKED
    from flanscan._match import match_service
    from flanscan._vulners import findings_from_vulners

    tracker = tracker_for(db) if db is not None else None
    distribution = DistributionMemo(tracker)
    floor = SourceConfidence(min_confidence).rank
    least = Severity.from_label(min_severity) if min_severity else None

    # The matches above the floor per matched banner: the matcher's result depends on these
    # fields only (its own cache key), and a fleet repeats few banners over many locations.
    kept: dict[tuple[object, ...], list[Finding]] = {}
    possible = floor <= SourceConfidence.POSSIBLE.rank

    def matched(service: ServiceObservation) -> list[Finding]:
        if db is None:
            return []
        key = (service.cpes, service.product, service.version, service.extrainfo)
        found = kept.get(key)
        if found is None:
            if len(kept) >= 65_536:  # hostile banners can each be new: bounded
                kept.clear()
            found = kept[key] = [
                f
                for f in match_service(service, db, include_possible=possible)
                if f.source_confidence.rank >= floor
            ]
        return list(found)

    def analyze(host: HostObservation, service: ServiceObservation) -> Sequence[Finding]:
        # Product-only matches are always kept: the report counts them, and lists them on request.
        findings = matched(service)
        if service.vulners:
            known = {f.id for f in findings}
            findings.extend(f for f in findings_from_vulners(service) if f.id not in known)
        findings = distribution(host, service, findings)
        if untracked is not None:
            for f in findings:
                ev = f.distribution
                if ev is None or ev.tracker is not None or ev.release is None:
                    continue
                if ev.distribution in TRACKED and not (
                    tracker is not None and tracker.covers(ev.distribution, ev.release)
                ):
                    untracked.add((ev.distribution, ev.release))
        if least is not None:
            findings = [
                f for f in findings if f.severity == Severity.UNKNOWN or f.severity >= least
            ]
        if suppressions is not None:
            location = Location(host.address, service.port, service.protocol, host.hostnames)
            findings = suppressions.apply(location, service, findings)
        return findings

    return analyze


def report_from_files(
    paths: Sequence[Path],
    *,
    scan: ScanSummary | None = None,
    analyze: Analyzer | None = None,
    vulndb: VulnDbSummary | None = None,
    vulndb_note: str | None = None,
    notes: Sequence[str] = (),
    changes: ChangeSummary | None = None,
    check: ScopeCheck | None = None,
) -> Report:
    """Build a Report from saved XML files/directories, streaming the hosts. Without `scan`
    (no run.json), the scan summary comes from the files themselves (`summarize_runs`); with
    it, the files' warnings are added to it. With `check`, hosts outside the scope are left
    out and named in the warnings and notes."""
    from flanscan._report import build_report
    from flanscan._xmlset import NmapXmlSet, find_xml_files, summarize_runs

    source = NmapXmlSet(find_xml_files(paths), check)
    report = build_report(
        source.hosts(),
        scan=scan or ScanSummary(),
        analyze=analyze,
        vulndb=vulndb,
        vulndb_note=vulndb_note,
        notes=notes,
        changes=changes,
    )
    from_xml = summarize_runs(source.infos)
    if scan is None:
        summary = dataclasses.replace(
            from_xml,
            hosts_up=report.scan.hosts_up,
            hosts_down=max(from_xml.hosts_down, report.scan.hosts_down),
        )
    else:
        summary = dataclasses.replace(
            report.scan,
            warnings=tuple(dict.fromkeys(report.scan.warnings + from_xml.warnings)),
            xml_files=report.scan.xml_files or from_xml.xml_files,
            nmap_version=report.scan.nmap_version or from_xml.nmap_version,
            start=report.scan.start or from_xml.start,
            end=report.scan.end or from_xml.end,
        )
    scope_warnings = tuple(check.warnings()) if check is not None else ()
    if scope_warnings:
        summary = dataclasses.replace(summary, warnings=(*summary.warnings, *scope_warnings))
    return dataclasses.replace(report, scan=summary, notes=(*report.notes, *scope_warnings))


def report_from_xml(
    paths: Sequence[Path],
    options: ReportOptions,
    *,
    scan: ScanSummary | None = None,
    check: ScopeCheck | None = None,
) -> Report:
    """Build the Report from saved Nmap XML (files or result directories), without scanning.
    Hosts are streamed from the files; `scan` (from run.json) heads the report when given, and
    its targets are the scope hosts are checked against (unless `check` is given)."""
    from flanscan._scopecheck import ScopeCheck, scope_of

    if check is None and scan is not None:
        check = ScopeCheck(scope_of(scan.targets, scan.excluded, "run.json"))

    db, note = open_vulndb(options)
    if db is not None:
        note = stale_note(db, options.max_db_age)
    untracked: set[tuple[str, str]] = set()
    suppressions = None
    if options.suppressions is not None:
        from flanscan._suppress import load_suppressions

        suppressions = load_suppressions(options.suppressions)
    try:
        report = report_from_files(
            paths,
            scan=scan,
            analyze=make_analyzer(
                db, suppressions, options.min_confidence, options.min_severity, untracked
            ),
            vulndb=dataclasses.replace(db.summary(), max_age_days=options.max_db_age)
            if db is not None
            else None,
            vulndb_note=note,
            check=check,
        )
    finally:
        if db is not None:
            db.close()
    if untracked:
        builds = ", ".join(f"{d} {r}" for d, r in sorted(untracked))
        missing = (
            f"distribution builds ({builds}) were found, but the database has no tracker data "
            "for them: their findings stay unconfirmed; run `flan db update`, or offline "
            "`flan db import` the Debian and Ubuntu files (README: Air-gapped networks)"
        )
        report = dataclasses.replace(
            report,
            notes=(*report.notes, missing),
            vulndb_note="; ".join(n for n in (report.vulndb_note, missing) if n),
        )
    if suppressions is not None:
        # Only after every finding went through the rules can a rule be called unused.
        report = dataclasses.replace(report, notes=(*report.notes, *suppressions.notes()))
    return dataclasses.replace(report, list_product_only=options.show_product_only)


def report(paths: Sequence[str | Path], options: ReportOptions | None = None) -> Report:
    """The Report of saved Nmap XML files or `flan scan` run directories, without scanning; a
    single run directory's run.json heads it (the targets as given, the profile)."""
    inputs = [Path(p) for p in paths]
    scan = None
    if len(inputs) == 1 and inputs[0].is_dir():
        from flanscan._records import summary_from_run_json  # ~10 ms of dataclasses: only here

        scan = summary_from_run_json(inputs[0])
    return report_from_xml(inputs, options or ReportOptions(), scan=scan)


STDOUT = Path("-")  # `-o -`: the report goes to standard output
DEFAULT_FORMATS = ("html", "json")


def output_formats(formats: Sequence[str], out: Path | None) -> tuple[str, ...]:
    """The formats `flan report` writes: those asked for (default html and json), or, without
    --format, the one `out`'s file name extension names. `-o -` takes exactly one; a file name
    whose extension names another format than the one asked for is refused."""
    from flanscan._render import EXTENSIONS, format_of_path

    chosen = tuple(dict.fromkeys(formats))
    if out == STDOUT:
        if len(chosen) != 1:
            raise UsageError(
                "-o - writes one report to standard output: give exactly one --format "
                "(e.g. -f sarif)"
            )
        return chosen
    named = format_of_path(out.name) if out is not None else None
    if named is None:
        return chosen or DEFAULT_FORMATS
    if not chosen:
        return (named,)
    if len(chosen) > 1:
        raise UsageError(
            f"{out}: a file name holds one report, but {len(chosen)} formats were asked for: "
            "give a directory to -o, or one --format"
        )
    if chosen[0] != named:
        raise UsageError(
            f"{out}: the extension says {named}, but --format {chosen[0]} was asked for: "
            f"name the file *.{EXTENSIONS[chosen[0]]}, or drop --format"
        )
    return chosen


def rebuild_reports(
    inputs: Sequence[Path],
    options: ReportOptions,
    out: Path | None,
    *,
    force: bool = False,
    stdout: IO[bytes] | None = None,
) -> RunOutcome:
    """`flan report`: reports rebuilt from saved XML files or result directories into `out`
    (None: the run directory given, else the current one; `-` (STDOUT): the `stdout` stream,
    one format). A `flan scan` run directory is
    rebuilt with what its run.json recorded (rules, database, history, thresholds) for every
    option not given; its own reports are never replaced without `force` (without `out`, the
    rebuild goes to its rebuilt/ directory)."""
    from flanscan._records import RUN_FILE, RecordError, RunRecord

    formats = output_formats(options.formats, out)
    options = dataclasses.replace(options, formats=formats)
    run_dir = inputs[0] if len(inputs) == 1 and inputs[0].is_dir() else None
    messages: list[str] = []
    if run_dir is not None and (run_dir / RUN_FILE).is_file():
        try:
            recorded = RunRecord.read(run_dir).report_inputs
        except RecordError as exc:
            # Never silent: without its run.json the report has no scan details or scope.
            messages.append(
                f"warning: {exc}; the report is built from the XML alone (no scope check)"
            )
        else:
            if recorded is not None:
                options = _usable(options_for_rebuild(options, recorded), options, messages)
    if out != STDOUT:
        out = _rebuild_target(run_dir, options.formats, out, force, messages)
    check_gate(options)
    built = report(inputs, options)
    built = _changes_from_history(built, options, messages)
    outcome = RunOutcome(messages=[*messages, *(f"warning: {w}" for w in built.scan.warnings)])
    if built.vulndb_note:
        outcome.messages.append(vulndb_message(built))
    if out == STDOUT:
        from flanscan._render import write_report

        if stdout is None:
            raise UsageError("-o -: no standard output to write the report to")
        write_report(built, options.formats[0], stdout)
        stdout.flush()
        outcome.report_on_stdout = True
    else:
        outcome.report_paths = write_reports(built, options.formats, out)
    outcome.report = built
    if fail_on_reached(built, options.fail_on):
        outcome.earn(ExitStatus.FINDINGS)
    return outcome


def _usable(rebuilt: ReportOptions, given: ReportOptions, messages: list[str]) -> ReportOptions:
    """The recorded inputs that still exist (a run directory copied to another machine may
    not bring its database or rules): the others fall back to what was given, said once."""
    if rebuilt.db_path is not None and rebuilt.db_path != given.db_path:
        if not rebuilt.db_path.is_file():
            messages.append(
                f"warning: the run's vulnerability database {rebuilt.db_path} is gone: "
                "using the default (--db to choose)"
            )
            rebuilt = dataclasses.replace(rebuilt, db_path=given.db_path)
    rules = rebuilt.suppressions
    if rules is not None and rules != given.suppressions and not rules.is_file():
        messages.append(
            f"warning: the run's exception rules {rules} are gone: rebuilt without them "
            "(--suppressions to give them)"
        )
        rebuilt = dataclasses.replace(rebuilt, suppressions=given.suppressions)
    return rebuilt


def _rebuild_target(
    run_dir: Path | None, formats: Sequence[str], out: Path | None, force: bool, messages: list[str]
) -> Path:
    """Where a rebuild writes; refuses to replace a run's own reports unless forced."""
    if out is None and run_dir is None:
        return Path.cwd()
    if out is None:
        assert run_dir is not None
        if force or not any(p.exists() for p in report_paths(formats, run_dir)):
            return run_dir
        messages.append(
            f"note: {run_dir} holds the scan's own reports: writing to {run_dir / 'rebuilt'}"
        )
        return run_dir / "rebuilt"
    if run_dir is not None and not force:
        own = [p for p in report_paths(formats, out) if p.parent.resolve() == run_dir.resolve()]
        if any(p.exists() for p in own):
            raise UsageError(
                f"{own[0]}: the scan's own report; write the rebuild elsewhere (-o DIR) or "
                "pass --force to replace it"
            )
    return out


def _changes_from_history(built: Report, options: ReportOptions, messages: list[str]) -> Report:
    """The rebuilt report with the changes since the run before it in the history, when it
    has one (read-only: a rebuild records nothing)."""
    if options.history is None:
        return built
    from flanscan._history import open_history
    from flanscan._secrets import MASK

    if MASK in options.history:
        messages.append("note: the run's history URL had a password: pass --history for changes")
        return built
    try:
        store = open_history(options.history, create=False)
        try:
            changes = store.changes_before(built)
        finally:
            store.close()
    except FlanError as exc:
        messages.append(f"warning: no changes section: {exc}")
        return built
    except Exception as exc:  # a database driver's error (corrupt file, server gone, ...)
        messages.append(f"warning: no changes section: {options.history}: {db_failure(exc)}")
        return built
    return dataclasses.replace(built, changes=changes) if changes is not None else built


def report_paths(formats: Sequence[str], out: Path) -> list[Path]:
    """The file each format goes to (see `write_reports`)."""
    if len(formats) == 1 and out.suffix:
        return [out]
    from flanscan._render import EXTENSIONS

    return [out / f"report.{EXTENSIONS.get(fmt, fmt)}" for fmt in formats]


def write_reports(report: Report, formats: Sequence[str], out: Path) -> list[Path]:
    """Render each format to `out/report.<ext>` (out is a directory), or to `out` itself when a
    single format is asked for and `out` names a file."""
    from flanscan._render import write_report

    written = []
    for fmt, path in zip(formats, report_paths(formats, out), strict=True):
        with atomic_output(path) as stream:
            write_report(report, fmt, stream)
        written.append(path)
    return written


def history_location(options: ReportOptions, out: Path) -> str:
    """The history a run in `out` is recorded in: --history, else FLAN_HISTORY, else
    history.sqlite3 in the user data directory (never relative to `out` or the cwd)."""
    from flanscan._history import default_history

    return options.history or default_history()


def report_inputs(options: ReportOptions, out: Path) -> ReportInputs:
    """What run.json records of these options, for a rebuild of the run in `out`."""
    from flanscan._records import ReportInputs
    from flanscan._secrets import mask_url
    from flanscan._vulndb import default_db_path

    db = (options.db_path or default_db_path()).absolute() if options.use_db else None
    rules = options.suppressions.absolute() if options.suppressions is not None else None
    history = None
    if options.record_history:
        history = history_location(options, out)
        history = mask_url(history) if "://" in history else str(Path(history).absolute())
    return ReportInputs(
        db=str(db) if db is not None else None,
        suppressions=str(rules) if rules is not None else None,
        history=history,
        min_confidence=options.min_confidence,
        min_severity=options.min_severity,
        max_db_age=options.max_db_age,
        fail_on=options.fail_on,
    )


def options_for_rebuild(options: ReportOptions, recorded: ReportInputs) -> ReportOptions:
    """`options` with what the run recorded in place of every option the user did not set:
    the same rules, database, history and thresholds make the same report."""
    given = options.given
    changes: dict[str, object] = {}
    if not given & {"db_path", "no_db"}:
        changes["use_db"] = recorded.db is not None
        changes["db_path"] = Path(recorded.db) if recorded.db is not None else None
    if "suppressions" not in given and recorded.suppressions is not None:
        changes["suppressions"] = Path(recorded.suppressions)
    if "history" not in given and recorded.history is not None:
        changes["history"] = recorded.history
    for name in ("min_confidence", "min_severity", "max_db_age", "fail_on"):
        if name not in given:
            changes[name] = getattr(recorded, name)
    return dataclasses.replace(options, **changes)  # type: ignore[arg-type]


def _record_history(
    report: Report, options: ReportOptions, outcome: RunOutcome, *, out: Path, source: str
) -> Report:
    """Record the run; return the report with the changes since the previous run of its
    targets (when there is one)."""
    from flanscan._history import diff_runs, open_history
    from flanscan._history._groups import compact_from_report

    store = open_history(history_location(options, out))
    try:
        compact = compact_from_report(report)  # converted once for both
        previous = store.previous_run(report, compact=compact)
        outcome.run_id = store.record(report, run_dir=str(out), source=source, compact=compact)
        del compact
        if previous is not None:
            changes = diff_runs(store, previous.id, outcome.run_id)
            report = dataclasses.replace(report, changes=changes)
    finally:
        store.close()
    return report


def _check_fail_on(fail_on: str | None) -> None:
    if fail_on is not None and fail_on not in FAIL_ON_CHOICES:
        raise UsageError(f"--fail-on {fail_on!r}: choose one of {', '.join(FAIL_ON_CHOICES)}")


def fail_on_reached(report: Report, fail_on: str | None) -> bool:
    """True when an open finding reaches the --fail-on threshold."""
    _check_fail_on(fail_on)
    if fail_on is None:
        return False
    for svc in report.services:
        for sf in svc.open_findings:
            vuln = sf.finding.vulnerability
            if fail_on == "kev":
                if vuln.kev is not None:
                    return True
            elif sf.finding.severity >= Severity.from_label(fail_on):
                return True
    return False


def report_run(run_dir: Path, scan: ScanSummary | None, options: ReportOptions) -> RunOutcome:
    """After a scan: build the report from the run's XML, record history, compare with the
    previous run, write every format, send alerts. The XML stays whatever happens."""
    from flanscan._scopecheck import ScopeCheck, scope_of

    check = ScopeCheck(scope_of(scan.targets, scan.excluded, "run.json")) if scan else None
    # The scan's own list of XML it wrote: an interrupted scan may have none yet, and its
    # report (of nothing checked) is still written.
    paths = [Path(p) for p in scan.xml_files] if scan is not None else [run_dir]
    outcome = RunOutcome()
    try:
        report = report_from_xml(paths, options, scan=scan, check=check)
    except (VulnDbError, sqlite3.Error) as exc:
        # The database broke after the scan (corrupt, replaced, disk error): the scan's results
        # still become reports, without CVEs, and the failure is named (exit 4).
        outcome.messages.append(f"vulnerability matching failed: {db_failure(exc)}")
        outcome.earn(ExitStatus.DELIVERY)
        check = ScopeCheck(scope_of(scan.targets, scan.excluded, "run.json")) if scan else None
        no_db = dataclasses.replace(options, use_db=False)
        report = report_from_xml(paths, no_db, scan=scan, check=check)
        report = dataclasses.replace(
            report, vulndb_note="vulnerability database failed during the report: no CVEs listed"
        )
    if check is not None:
        outcome.messages.extend(f"warning: {line}" for line in check.warnings())
    finish_report(report, options, outcome, out=run_dir, source="scan")
    return outcome


def finish_report(
    report: Report,
    options: ReportOptions,
    outcome: RunOutcome,
    *,
    out: Path,
    source: str,
) -> Report:
    """Everything after the report is built, shared by a scan and a merge of shards: record it
    in the history (`history_location`) with the changes since the
    previous run of the same targets, write each format into `out`, send alerts, and set the
    exit code for --fail-on. Fills `outcome` and returns the report as written."""
    if report.vulndb_note:
        outcome.messages.append(vulndb_message(report))

    if options.record_history:
        try:
            report = _record_history(report, options, outcome, out=out, source=source)
        except FlanError as exc:
            # The reports matter more than the record: write them, then say what failed.
            outcome.messages.append(f"history not recorded: {exc}")
            outcome.earn(ExitStatus.DELIVERY)
        except Exception as exc:  # a database driver's error (disk full, corrupt file, ...)
            where = history_location(options, out)
            outcome.messages.append(f"history not recorded: {where}: {db_failure(exc)}")
            outcome.earn(ExitStatus.DELIVERY)

    outcome.report_paths = write_reports(report, options.formats, out)
    outcome.report = report

    if options.notify:
        from flanscan._history import diff_reports
        from flanscan._notify import send_alerts

        # The first run of a set of targets alerts on everything it found: to the people
        # being alerted, every finding is new.
        changes = report.changes or diff_reports(Report(ScanSummary(), ()), report)
        failures = send_alerts(
            options.notify,
            report,
            changes,
            Severity.from_label(options.notify_min_severity),
        )
        for failure in failures:
            outcome.messages.append(f"alert not delivered: {failure}")
        if failures:
            outcome.earn(ExitStatus.DELIVERY)

    if outcome.status == ExitStatus.OK and fail_on_reached(report, options.fail_on):
        outcome.earn(ExitStatus.FINDINGS)
        outcome.messages.append(f"findings reached --fail-on {options.fail_on}")
    return report
