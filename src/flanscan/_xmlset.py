"""A set of saved Nmap XML files read as one input: which files a path names (a run directory's
xml/, a directory's *.xml, files), their hosts as one stream, and the scan summary the files
themselves give when no run.json describes the run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from flanscan._errors import ParseError
from flanscan._model import HostObservation, NmapRunInfo, ScanSummary
from flanscan._nmapopts import mask_command, parse_nmap_args
from flanscan._scopecheck import ScopeCheck


def find_xml_files(paths: Sequence[Path]) -> list[Path]:
    """Nmap XML files named directly, or in a directory (its `xml/` folder if it has one,
    else its `*.xml` files); a directory without any is an error naming it."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            base = path / "xml" if (path / "xml").is_dir() else path
            found = sorted(p for p in base.glob("*.xml") if p.is_file())
            if not found:
                raise ParseError(f"{path}: no Nmap XML files (*.xml) found in it")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise ParseError(f"{path}: a device or pipe, not a file of Nmap XML; save it first")
        else:
            raise ParseError(f"{path}: no such file or directory")
    return files


class NmapXmlSet:
    """Several Nmap XML files read as one stream of hosts (files in the order given)."""

    def __init__(self, files: Sequence[Path], check: ScopeCheck | None = None) -> None:
        from flanscan._parse import NmapXmlFile

        self.readers = [NmapXmlFile(f) for f in files]
        self.check = check

    def hosts(self) -> Iterator[HostObservation]:
        for reader in self.readers:
            if self.check is None:
                yield from reader.hosts()
            else:
                yield from self.check.filter(reader.path, reader.hosts())

    @property
    def infos(self) -> list[NmapRunInfo]:
        """Each file's run information (complete once `hosts()` is exhausted)."""
        return [r.info for r in self.readers]


def summarize_runs(infos: Sequence[NmapRunInfo]) -> ScanSummary:
    """A ScanSummary from what the XML files themselves say (when no run.json exists):
    targets and ports from the command lines, the earliest start and latest end, the Nmap
    version, hosts counted, and a warning for each file that is incomplete."""
    targets: dict[str, None] = {}
    excluded: dict[str, None] = {}
    ports: dict[str, None] = {}
    versions: dict[str, None] = {}
    warnings: list[str] = []
    for info in infos:
        parsed = parse_nmap_args(info.args)
        targets.update(dict.fromkeys(parsed.targets))
        targets.update(dict.fromkeys(f"-iL {name}" for name in parsed.input_lists))
        excluded.update(dict.fromkeys(parsed.excluded))
        if parsed.ports:
            ports[parsed.ports] = None
        if info.version:
            versions[info.version] = None
        warnings.extend(info.warnings)
        if not info.complete and not info.warnings:
            warnings.append(f"{info.source}: incomplete Nmap run")
    starts = [i.start for i in infos if i.start is not None]
    ends = [i.end for i in infos if i.end is not None]
    return ScanSummary(
        targets=tuple(targets),
        excluded=tuple(excluded),
        nmap_commands=tuple(dict.fromkeys(mask_command(i.args) for i in infos if i.args)),
        nmap_version=", ".join(versions) or None,
        start=min(starts) if starts else None,
        end=max(ends) if ends else None,
        xml_files=tuple(i.source for i in infos),
        warnings=tuple(dict.fromkeys(warnings)),
        hosts_up=sum(i.hosts_up for i in infos),
        hosts_down=sum(i.hosts_down for i in infos),
        ports="; ".join(ports) or None,
    )
