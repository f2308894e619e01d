"""`flan db`: build, update and inspect the offline vulnerability database."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from flanscan._cli._options import db_option
from flanscan._vulndb import STALE_DAYS, BuildResult, DbStatus, VulnDb, resolve_db_path
from flanscan._vulndb import ProgressTask as _ProgressTask
from flanscan._vulndb._affected import SourceFigures
from flanscan._vulndb.sources import REGISTRY


class RichProgress:
    """The library's progress interface drawn as rich progress bars (silent when not a TTY)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def task(self, description: str, total: int | None = None) -> _ProgressTask:
        return _RichTask(self.bar, self.bar.add_task(description, total=total))

    def note(self, message: str) -> None:
        if self.console.is_terminal:
            self.console.print(message, markup=False, highlight=False)


class _RichTask:
    def __init__(self, bar: Progress, task_id: TaskID) -> None:
        self.bar, self.task_id = bar, task_id

    def advance(self, amount: int) -> None:
        self.bar.advance(self.task_id, amount)

    def set_total(self, total: int | None) -> None:
        self.bar.update(self.task_id, total=total)

    def finish(self) -> None:
        self.bar.remove_task(self.task_id)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _report_build(result: BuildResult, action: str) -> None:
    if not result.changed:
        click.echo(f"{result.path}: already up to date")
        return
    per_source: dict[str, list[str]] = {}
    for source, name in result.files:
        per_source.setdefault(source, []).append(name)
    for source, names in per_source.items():
        if len(names) <= 10:
            for name in names:
                click.echo(f"  {source:<6} {name}")
        else:  # a directory tree of records: one line, not thousands
            click.echo(f"  {source:<6} {len(names)} files ({names[0]} ...)")
    if result.skipped:
        click.echo(f"  skipped {len(result.skipped)} file(s) no source recognises", err=True)
    with VulnDb.open(result.path) as db:
        status = db.status()
    for src in status.sources:
        if src.figures.not_understood and src.name in per_source:
            click.echo(
                f"flan: warning: {src.name}: {src.figures.not_understood} records not understood"
                " were skipped; the first:",
                err=True,
            )
            for issue in src.figures.issues:
                click.echo(f"  skipped {issue}", err=True)
    click.echo(
        f"{action} {result.path}: {status.cve_count} CVEs ({_human_size(status.size_bytes)})"
    )


@click.group()
def db() -> None:
    """Build, update and inspect the offline vulnerability database.

    \b
    The database is one SQLite file built from the NVD CVE 2.0 feeds, the CISA Known
    Exploited Vulnerabilities catalogue, FIRST EPSS scores, CVE JSON 5 records (cvelistV5,
    CISA vulnrichment), anchore nvd-data-overrides and the distributions' security trackers.
    Scans and reports only read it.
    """


@db.command()
@db_option
@click.option("--nvd-url", help="Base URL of the NVD 2.0 feeds (env FLAN_NVD_URL).")
@click.option("--kev-url", help="URL of the KEV catalogue JSON (env FLAN_KEV_URL).")
@click.option("--epss-url", help="URL of the EPSS scores CSV (env FLAN_EPSS_URL).")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="HTTP timeout (s).")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(list(REGISTRY)),
    help="Update only this source (repeatable); the others keep their data.",
)
@click.option(
    "--download-only",
    metavar="DIR",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Only download every source's files into DIR (no database is touched), to copy to "
    "an air-gapped machine and load there with `flan db import DIR`.",
)
def update(
    db_path: Path | None,
    nvd_url: str | None,
    kev_url: str | None,
    epss_url: str | None,
    timeout: float,
    only: tuple[str, ...],
    download_only: Path | None,
) -> None:
    """Download what changed in the feeds and swap in an updated database.

    Unchanged NVD feeds are skipped (their .meta sha256), the `modified` feed is used when the
    yearly feeds are recent, archives whose content did not change are not imported again
    (cvelistV5, vulnrichment, nvd-data-overrides, the Debian CVE list), interrupted downloads
    resume, and a failure leaves the previous database in use. Source URLs can be changed
    with FLAN_CVE5_URL, FLAN_VULNRICHMENT_URL, FLAN_OVERRIDES_URL, FLAN_DEBIAN_LIST_URL.
    """
    from flanscan._vulndb import update_db

    path = resolve_db_path(db_path)
    urls = {k: v for k, v in (("nvd", nvd_url), ("kev", kev_url), ("epss", epss_url)) if v}
    if download_only is not None:
        from flanscan._vulndb._build import download_feeds

        with RichProgress(Console(stderr=True)) as progress:
            files = download_feeds(download_only, urls=urls, only=only or None,
                                   progress=progress, timeout=timeout)  # fmt: skip
        for file in files:
            click.echo(str(file))
        click.echo(
            f"downloaded {len(files)} file(s) into {download_only}: copy the directory, then "
            f"run `flan db import {download_only}` there",
            err=True,
        )
        return
    with RichProgress(Console(stderr=True)) as progress:
        result = update_db(path, urls=urls, only=only or None, progress=progress, timeout=timeout)
    _report_build(result, "updated")


@db.command(name="import")
@db_option
@click.option("--fresh", is_flag=True, help="Start from an empty database instead of adding.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def import_(db_path: Path | None, fresh: bool, paths: tuple[Path, ...]) -> None:
    """Build or extend the database from files copied by hand (air-gapped networks).

    PATHS are NVD CVE 2.0 feed files (.json or .json.gz), directories of them, single CVE 2.0
    JSON records, the CISA KEV JSON, an EPSS CSV (.csv or .csv.gz), the Debian security
    tracker JSON, its data/CVE/list or data/DSA/list (text or vuln-list JSON), Ubuntu OSV
    records (the all.zip export or JSON files),
    CVE JSON 5 records (the cvelistV5 release zip or repository archive, the vulnrichment
    archive, or directory trees of records), and the nvd-data-overrides tarball or data/
    tree; detected by content. Malformed records are skipped and counted.
    """
    from flanscan._vulndb import import_paths

    path = resolve_db_path(db_path)
    with RichProgress(Console(stderr=True)) as progress:
        result = import_paths(path, list(paths), fresh=fresh, progress=progress)
    _report_build(result, "imported into")


def status_dict(status: DbStatus) -> dict[str, Any]:
    return {
        "path": str(status.path),
        "size_bytes": status.size_bytes,
        "cve_count": status.cve_count,
        "without_configurations": status.without_configurations,
        "rejected": status.rejected_count,
        "products": status.products,
        "kev_count": status.kev_count,
        "epss_count": status.epss_count,
        "built_at": status.built_at,
        "age_days": round(status.age_days, 2) if status.age_days is not None else None,
        "stale": status.stale,
        "schema_version": status.schema_version,
        "sources": [
            {
                "name": s.name,
                "title": s.title,
                "data_date": s.data_date,
                "imported_at": s.imported_at,
                "detail": s.detail,
                "records": s.figures.records,
                "tiers": {
                    tier: {"cves": covered, "without_nvd_configurations": beyond}
                    for tier, covered, beyond in s.figures.tiers
                },
                "not_understood": s.figures.not_understood,
                "without_usable_data": s.figures.unusable,
                "first_not_understood": list(s.figures.issues),
            }
            for s in status.sources
        ],
    }


def _figures_line(figures: SourceFigures) -> str:
    tiers = "; ".join(
        f"tier {tier}: {covered} CVEs ({beyond} without NVD configurations)"
        if tier != "nvd"
        else f"tier nvd: {covered} CVEs with configurations"
        for tier, covered, beyond in figures.tiers
    )
    line = f"              {figures.records} records"
    if tiers:
        line += f"; {tiers}"
    if figures.unusable:
        line += f"; {figures.unusable} without usable affected data"
    return line + f"; {figures.not_understood} not understood"


@db.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(db_path: Path | None, as_json: bool) -> None:
    """Show what the database holds: CVE count, sources and their dates, size, age."""
    path = resolve_db_path(db_path)
    with VulnDb.open(path) as vdb:
        st = vdb.status()
    if as_json:
        click.echo(json.dumps(status_dict(st), indent=2))
    else:
        click.echo(f"Database:  {st.path} ({_human_size(st.size_bytes)})")
        click.echo(
            f"CVEs:      {st.cve_count} ({st.without_configurations} awaiting NVD analysis: "
            f"stored, never matched; {st.rejected_count} rejected kept out)"
        )
        click.echo(f"Products:  {st.products} vendor:product pairs indexed")
        click.echo(f"KEV:       {st.kev_count} entries    EPSS: {st.epss_count} scores")
        click.echo("Sources:")
        for s in st.sources:
            detail = f" ({s.detail})" if s.detail else ""
            click.echo(
                f"  {s.name:<11} {s.title:<38} data {s.data_date or '-'}{detail}, "
                f"imported {s.imported_at}"
            )
            if s.figures.records is not None:
                click.echo(_figures_line(s.figures))
            for issue in s.figures.issues:
                click.echo(f"              not understood: {issue}")
        if not st.sources:
            click.echo("  (none)")
        age = f"{st.age_days:.1f} days" if st.age_days is not None else "unknown"
        click.echo(f"Built:     {st.built_at or '-'} (data age {age})")
    if st.stale:
        click.echo(
            f"flan: warning: the vulnerability data is older than {STALE_DAYS} days "
            f"({'unknown age' if st.age_days is None else f'{st.age_days:.0f} days'}): run "
            "`flan db update`, or import newer feeds with `flan db import`",
            err=True,
        )
    sys.stdout.flush()
