"""Streaming, attack-proof reader of Nmap XML output (`nmap -oX`).

`NmapXmlFile(path).hosts()` yields one `HostObservation` per `<host>` and forgets the element
right after, so memory stays flat on scans of tens of thousands of hosts. Parsing is expat with
defusedxml's protections (its handlers refusing entity declarations and external references)
plus one of ours: any DTD other than Nmap's own bare `<!DOCTYPE nmaprun>` is refused before
anything outside the file is read. Elements are built by ElementTree's C TreeBuilder called
straight from expat (defusedxml's own parser builds them in Python, 39 % of a 100k-host
report), and each `<host>` is read with ElementTree's C `find`s.

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
from xml.parsers import expat

from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden

from flanscan._errors import ParseError
from flanscan._model import (
    HostObservation,
    NmapRunInfo,
    ScriptResult,
    ServiceObservation,
)
from flanscan._vulners import read_vulners

KEPT_STATES = ("open", "open|filtered")


_CHUNK = 1 << 16  # bytes handed to expat at a time; finished hosts are read between chunks


class _NmapXmlParser:
    """expat building ElementTree elements, with defusedxml's protections and Nmap's DOCTYPE.

    The handlers that refuse entity declarations (parsed and unparsed) and external entity
    references raise defusedxml's own exceptions, as defusedxml's parsers do. Nmap writes
    `<!DOCTYPE nmaprun>` with no identifiers and no internal subset; anything else (a
    SYSTEM/PUBLIC id, declarations) is not Nmap output and could make a parser fetch files.
    Elements are built by the C TreeBuilder, called by expat without a Python frame; only each
    element's end passes through Python, to collect the finished children of the root.
    """

    def __init__(self) -> None:
        self.doctype: str | None = None
        self.root: ET.Element | None = None
        self.finished: list[ET.Element] = []  # direct children of the root, complete
        self._builder = ET.TreeBuilder()
        self.parser = expat.ParserCreate()
        self.parser.buffer_text = True
        self.parser.StartDoctypeDeclHandler = self._start_doctype
        self.parser.EntityDeclHandler = self._entity_decl
        self.parser.UnparsedEntityDeclHandler = self._unparsed_entity_decl
        self.parser.ExternalEntityRefHandler = self._external_entity_ref
        self.parser.StartElementHandler = self._start_root
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._builder.data

    def feed(self, data: bytes, final: bool = False) -> None:
        self.parser.Parse(data, final)

    def _start_root(self, tag: str, attrs: dict[str, str]) -> None:
        self.root = self._builder.start(tag, attrs)
        self.parser.StartElementHandler = self._builder.start  # C from here on

    def _end(self, tag: str) -> None:
        elem = self._builder.end(tag)
        root = self.root
        if elem is not root and root is not None and root[-1] is elem:
            self.finished.append(elem)

    def _start_doctype(
        self, name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool
    ) -> None:
        if sysid or pubid or has_internal_subset:
            raise _ForbiddenDoctype(name)
        self.doctype = name

    @staticmethod
    def _entity_decl(
        name: str,
        is_parameter_entity: bool,
        value: str | None,
        base: str | None,
        sysid: str | None,
        pubid: str | None,
        notation_name: str | None,
    ) -> None:
        raise EntitiesForbidden(name, value, base, sysid, pubid, notation_name)

    @staticmethod
    def _unparsed_entity_decl(
        name: str, base: str | None, sysid: str, pubid: str | None, notation_name: str
    ) -> None:
        raise EntitiesForbidden(name, None, base, sysid, pubid, notation_name)

    @staticmethod
    def _external_entity_ref(
        context: str, base: str | None, sysid: str | None, pubid: str | None
    ) -> int:
        raise ExternalReferenceForbidden(context, base, sysid, pubid)


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


MAX_WHITESPACE = 4096
_WS = " \t\r\n"
_LONG_WS = re.compile(rf"[ \t\r\n]{{{MAX_WHITESPACE + 1},}}")


class _SanitizedReader:
    """A binary reader that decodes UTF-8 leniently and defuses characters XML forbids, so
    that one odd banner cannot cut the rest of the file off."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""  # a character reference split across two reads
        self.eof = False
        self.seen_content = False  # anything but whitespace: an empty file is not "not XML"
        self.ws_run = 0  # length of the whitespace run the previous read ended with

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
                text = self._squeeze(text)
                if text or self.eof:  # an empty read means the end to the XML parser
                    return text.encode("utf-8")

    def _squeeze(self, text: str) -> str:
        """Cut every whitespace run to MAX_WHITESPACE characters, across reads: the XML tree
        builder keeps the text between two elements in memory, and 1 GB of spaces there would
        all be held. Nmap never writes such runs."""
        lead = len(text) - len(text.lstrip(_WS))
        if self.ws_run + lead > MAX_WHITESPACE:
            keep = max(0, MAX_WHITESPACE - self.ws_run)
            text = text[:keep] + text[lead:]
            lead = keep
        if lead == len(text):
            self.ws_run += lead
            return text
        text = _LONG_WS.sub(lambda m: m.group(0)[:MAX_WHITESPACE], text)
        self.ws_run = len(text) - len(text.rstrip(_WS))
        return text


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
        parser = _NmapXmlParser()
        stream = _SanitizedReader(handle)
        checked = False
        try:
            while True:
                data = stream.read(_CHUNK)
                try:
                    parser.feed(data, final=stream.eof)
                finally:
                    root = parser.root
                    if root is not None and not checked:
                        checked = True
                        if root.tag != "nmaprun":
                            raise ParseError(
                                f"{source}: not Nmap XML output (root element <{root.tag}>, "
                                "expected <nmaprun>); give files written by `nmap -oX`"
                            )
                        state.args = root.get("args", "")
                        state.version = root.get("version", "")
                        state.start = _epoch(root.get("start"))
                # A direct child of <nmaprun> is complete: use it, then drop it (flat memory).
                yield from _read_finished(parser, state, source)
                if stream.eof:
                    break
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
        except expat.ExpatError as exc:
            # The children finished before the error are complete, as they would be in a scan.
            yield from _read_finished(parser, state, source)
            if not stream.seen_content:
                # A worker stopped before Nmap wrote anything: no hosts, and say so.
                state.complete = False
                state.warnings.append(
                    f"{source}: empty Nmap XML file (scan interrupted before any output?)"
                )
                return
            if parser.root is None and parser.doctype != "nmaprun":
                raise ParseError(
                    f"{source}: not Nmap XML ({exc}); give files written by `nmap -oX`"
                ) from None
            # Nmap was stopped mid-write: the hosts read so far are complete and kept.
            state.complete = False
            state.warnings.append(
                f"{source}: cut short or unreadable at line {exc.lineno}, column {exc.offset} "
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


def _read_finished(
    parser: _NmapXmlParser, state: _RunState, source: str
) -> Iterator[HostObservation]:
    """Use, then drop, the root's children that expat has finished."""
    finished, parser.finished = parser.finished, []
    root = parser.root
    for elem in finished:
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
        if root is not None:
            root.remove(elem)
        elem.clear()


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
