"""Streaming, attack-proof reader of Nmap XML output (`nmap -oX`).

`NmapXmlFile(path).hosts()` yields one `HostObservation` per `<host>` and forgets the element
right after, so memory stays flat on scans of tens of thousands of hosts. Parsing goes through
defusedxml: entity declarations, external references and any DTD other than Nmap's own bare
`<!DOCTYPE nmaprun>` are refused before anything outside the file is read.

Which ports become services (documented in docs/report-model.md): state `open`, and
`open|filtered` only when version detection named a product (a UDP probe got an answer it
recognised). Closed, filtered and unanswered `open|filtered` ports are left out.
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, iterparse

from flanscan._errors import ParseError
from flanscan._model import (
    HostObservation,
    NmapRunInfo,
    ScriptResult,
    ServiceObservation,
)
from flanscan._vulners import read_vulners

KEPT_STATES = ("open", "open|filtered")


class _NmapDoctypeParser(DefusedXMLParser):
    """defusedxml's parser, also refusing any DOCTYPE that is more than Nmap's bare one.

    Nmap writes `<!DOCTYPE nmaprun>` with no identifiers and no internal subset; anything else
    (a SYSTEM/PUBLIC id, declarations) is not Nmap output and could make a parser fetch files.
    """

    def __init__(self) -> None:
        super().__init__(
            target=ET.TreeBuilder(), forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
        self.doctype: str | None = None
        self.parser.StartDoctypeDeclHandler = self._start_doctype

    def _start_doctype(
        self, name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool
    ) -> None:
        if sysid or pubid or has_internal_subset:
            raise _ForbiddenDoctype(name)
        self.doctype = name


class _ForbiddenDoctype(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


# Nmap writes some bytes of hostile banners as character references XML 1.0 forbids
# (`&#x1b;`, nmap/nmap#2657); a raw control byte is no better. Either would stop a strict
# parser there and hide every later host, so they become visible text (backslash x1b).
_BAD_CHAR_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
_RAW_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_PARTIAL_REF = re.compile(r"&(?:#[xX]?[0-9a-fA-F]*)?$")


def _valid_xml_char(code: int) -> bool:
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _fix_char_ref(match: re.Match[str]) -> str:
    code = int(match.group(1), 16) if match.group(1) is not None else int(match.group(2))
    if _valid_xml_char(code):
        return match.group(0)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{{{code:x}}}"


class _SanitizedReader:
    """A binary reader that decodes UTF-8 leniently and defuses characters XML forbids, so
    that one odd banner cannot cut the rest of the file off."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""  # a character reference split across two reads
        self.eof = False
        self.seen_content = False  # anything but whitespace: an empty file is not "not XML"

    def read(self, size: int = -1) -> bytes:
        while True:
            chunk = self.raw.read(size if size and size > 0 else -1)
            self.eof = not chunk
            text = self.pending + self.decoder.decode(chunk, final=self.eof)
            self.pending = ""
            if not self.eof:
                partial = _PARTIAL_REF.search(text[-16:])
                if partial is not None:
                    cut = len(text) - 16 + partial.start() if len(text) > 16 else partial.start()
                    text, self.pending = text[:cut], text[cut:]
            if text or self.eof:
                self.seen_content = self.seen_content or bool(text.strip())
                text = _BAD_CHAR_REF.sub(_fix_char_ref, text)
                text = _RAW_CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)
                return text.encode("utf-8")


def _epoch(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _unique(items: Iterator[str] | list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


@dataclass
class _RunState:
    """What the file says about its run, filled while streaming (NmapRunInfo is frozen)."""

    args: str = ""
    version: str = ""
    start: datetime | None = None
    end: datetime | None = None
    last_seen: datetime | None = None  # latest host/task time: the end of a file cut short
    exit_status: str | None = None
    error: str | None = None
    hosts_up: int | None = None
    hosts_down: int | None = None
    seen_up: int = 0
    seen_down: int = 0
    finished: bool = False
    complete: bool = True
    warnings: list[str] = field(default_factory=list)

    def note_time(self, value: str | None) -> None:
        when = _epoch(value)
        if when is not None and (self.last_seen is None or when > self.last_seen):
            self.last_seen = when

    def to_info(self, source: str) -> NmapRunInfo:
        return NmapRunInfo(
            source=source,
            args=self.args,
            version=self.version,
            start=self.start,
            end=self.end or self.last_seen,
            complete=self.complete,
            exit_status=self.exit_status,
            error=self.error,
            hosts_up=self.hosts_up if self.hosts_up is not None else self.seen_up,
            hosts_down=self.hosts_down if self.hosts_down is not None else self.seen_down,
            warnings=tuple(self.warnings),
        )


class NmapXmlFile:
    """One Nmap XML file, read as a stream of hosts.

    `hosts()` yields `HostObservation`s one by one; `info` (an `NmapRunInfo`) is complete once
    `hosts()` has been exhausted (reading it first reads the file through).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._state: _RunState | None = None
        self._done = False

    @property
    def info(self) -> NmapRunInfo:
        """The run's metadata; reads the whole file first if `hosts()` has not been exhausted."""
        if not self._done:
            for _ in self.hosts():
                pass
        assert self._state is not None
        return self._state.to_info(str(self.path))

    def hosts(self) -> Iterator[HostObservation]:
        """Yield every `<host>` of the file; raise `ParseError` if it is not Nmap XML."""
        state = _RunState()
        self._state = state
        self._done = False
        source = str(self.path)
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise ParseError(f"{source}: cannot read: {exc.strerror or exc}") from exc
        with handle:  # read once, front to back: a pipe (/dev/stdin) works too
            yield from self._stream(handle, state, source)
        self._done = True

    def _stream(self, handle: Any, state: _RunState, source: str) -> Iterator[HostObservation]:
        parser = _NmapDoctypeParser()
        stream = _SanitizedReader(handle)
        root: ET.Element | None = None
        depth = 0
        try:
            for event, elem in iterparse(stream, events=("start", "end"), parser=parser):
                if event == "start":
                    depth += 1
                    if depth == 1:
                        if elem.tag != "nmaprun":
                            raise ParseError(
                                f"{source}: not Nmap XML output (root element <{elem.tag}>, "
                                "expected <nmaprun>); give files written by `nmap -oX`"
                            )
                        root = elem
                        state.args = elem.get("args", "")
                        state.version = elem.get("version", "")
                        state.start = _epoch(elem.get("start"))
                    continue
                depth -= 1
                if depth != 1 or root is None:
                    continue
                # A direct child of <nmaprun> is complete: use it, then drop it (flat memory).
                if elem.tag == "host":
                    host = host_from_element(elem, source)
                    state.note_time(elem.get("endtime"))
                    if host is not None:
                        if host.status == "up":
                            state.seen_up += 1
                        else:
                            state.seen_down += 1
                        yield host
                elif elem.tag == "runstats":
                    _read_runstats(elem, state)
                elif elem.tag in ("taskend", "taskprogress", "taskbegin"):
                    state.note_time(elem.get("time"))
                root.remove(elem)
                elem.clear()
        except _ForbiddenDoctype as exc:
            raise ParseError(
                f"{source}: refused: it declares a DTD (<!DOCTYPE {exc.name} ...>), which Nmap "
                "output never does and which could pull in other files"
            ) from None
        except DefusedXmlException as exc:
            raise ParseError(
                f"{source}: refused: XML entity declarations or external references "
                f"({type(exc).__name__}) are not allowed in Nmap output"
            ) from None
        except ET.ParseError as exc:
            if not stream.seen_content:
                # A worker stopped before Nmap wrote anything: no hosts, and say so.
                state.complete = False
                state.warnings.append(
                    f"{source}: empty Nmap XML file (scan interrupted before any output?)"
                )
                return
            if root is None and parser.doctype != "nmaprun":
                raise ParseError(
                    f"{source}: not Nmap XML ({exc}); give files written by `nmap -oX`"
                ) from None
            # Nmap was stopped mid-write: the hosts read so far are complete and kept.
            state.complete = False
            line, column = exc.position
            state.warnings.append(
                f"{source}: cut short or unreadable at line {line}, column {column} "
                f"(interrupted scan?); only the {state.seen_up + state.seen_down} complete "
                "host(s) before it are used"
            )
            return
        if not state.finished:
            state.complete = False
            state.warnings.append(f"{source}: no <runstats> (Nmap did not finish this run)")
        elif state.exit_status == "error":
            state.complete = False
            state.warnings.append(
                f"{source}: Nmap reported an error: {state.error or 'no message'}"
            )


def _read_runstats(elem: ET.Element, state: _RunState) -> None:
    finished = elem.find("finished")
    if finished is not None:
        state.finished = True
        state.end = _epoch(finished.get("time"))
        state.exit_status = finished.get("exit")
        state.error = finished.get("errormsg")
    hosts = elem.find("hosts")
    if hosts is not None:
        state.hosts_up = _int(hosts.get("up"))
        state.hosts_down = _int(hosts.get("down"))


def host_from_element(elem: ET.Element, source: str | None = None) -> HostObservation | None:
    """Turn one `<host>` element into a `HostObservation` (None if it has no address)."""
    status_el = elem.find("status")
    status = status_el.get("state", "unknown") if status_el is not None else "unknown"
    address = address_type = mac = None
    for addr in elem.findall("address"):
        kind = addr.get("addrtype", "")
        value = addr.get("addr")
        if not value:
            continue
        if kind in ("ipv4", "ipv6") and address is None:
            address, address_type = value, kind
        elif kind == "mac" and mac is None:
            mac = value
    if address is None:
        if mac is None:
            return None
        address, address_type = mac, "mac"
    hostnames = _unique([h.get("name", "") for h in elem.findall("hostnames/hostname")])
    services = tuple(
        svc for svc in (_service(p, address) for p in elem.findall("ports/port")) if svc is not None
    )
    os_matches = _unique([m.get("name", "") for m in elem.findall("os/osmatch")])
    scripts = tuple(_script(s) for s in elem.findall("hostscript/script"))
    return HostObservation(
        address=address,
        address_type=address_type or "ipv4",
        hostnames=hostnames,
        status=status,
        mac=mac,
        services=services,
        os_matches=os_matches,
        source=source,
        scripts=scripts,
    )


def _script(elem: ET.Element) -> ScriptResult:
    return ScriptResult(id=elem.get("id", ""), output=elem.get("output", ""))


def _service(port: ET.Element, address: str) -> ServiceObservation | None:
    state_el = port.find("state")
    state = state_el.get("state", "") if state_el is not None else ""
    number = _int(port.get("portid"))
    if number is None or state not in KEPT_STATES:
        return None
    svc = port.find("service")
    if state != "open" and (svc is None or not svc.get("product")):
        return None  # UDP "open|filtered" with no answer: nothing is known to run there
    script_elems = port.findall("script")
    vulners = tuple(e for s in script_elems if s.get("id") == "vulners" for e in read_vulners(s))
    common: dict[str, Any] = {
        "address": address,
        "port": number,
        "protocol": port.get("protocol", "tcp"),
        "state": state,
        "scripts": tuple(_script(s) for s in script_elems),
        "vulners": vulners,
    }
    if svc is None:
        return ServiceObservation(**common)
    return ServiceObservation(
        **common,
        name=svc.get("name") or None,
        product=svc.get("product") or None,
        version=svc.get("version") or None,
        extrainfo=svc.get("extrainfo") or None,
        ostype=svc.get("ostype") or None,
        tunnel=svc.get("tunnel") or None,
        method=svc.get("method") or None,
        conf=_int(svc.get("conf")),
        cpes=_unique([(c.text or "").strip() for c in svc.findall("cpe")]),
    )
