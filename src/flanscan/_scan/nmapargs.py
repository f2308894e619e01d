"""The Nmap flags a user passes after `--`: read as Nmap reads them, checked, sorted by phase.

The options and their arities come from `flanscan._nmapopts` (Nmap 7.93's own table): an option
Nmap does not know, an abbreviation, a word Nmap would take as a target, and every option that
adds targets, writes files or reaches hosts that are not targets is refused, in every spelling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flanscan._errors import UsageError
from flanscan._nmapopts import NmapArg, refusal, split_nmap_argv

_PORT_SPEC = ("-p", "--top-ports", "--port-ratio", "-F", "--exclude-ports", "-r")
_TCP_SCAN_TYPES = ("-sS", "-sT", "-sA", "-sW", "-sM", "-sN", "-sF", "-sX", "-sI", "--scanflags",
                   "-b")  # fmt: skip
# Options that only matter once ports are known: run in the service phase of --ports all.
_SERVICE_ONLY = ("-sV", "-sC", "-A", "-O", "--script", "--script-args", "--script-args-file",
                 "--script-timeout", "--version-intensity", "--version-light", "--version-all",
                 "--version-trace", "--osscan-limit", "--osscan-guess", "--max-os-tries",
                 "--script-trace", "-sR", "--fuzzy")  # fmt: skip
# Host discovery options: meaningless for a service probe of a host already known to be up.
_DISCOVERY_ONLY = ("-P", "-Pn", "-P0", "-PN", "-PD", "-PS", "-PA", "-PT", "-PB", "-PU", "-PY",
                   "-PE", "-PI", "-PP", "-PM", "-PO", "-PR", "-sn", "-sP", "--disable-arp-ping",
                   "--discovery-ignore-rst", "--traceroute", "-n", "-R", "--dns-servers",
                   "--system-dns", "--resolve-all")  # fmt: skip


NmapOption = NmapArg  # one option with its value, named as Nmap's help names it


def split_options(args: Sequence[str]) -> list[NmapOption]:
    """Group pass-through argv words into options as Nmap 7.93 would; a word Nmap would take
    as a target, an unknown or ambiguous option, a missing value is a UsageError."""
    if "--" in args:
        raise UsageError(
            "Nmap flags after `--`: a second `--` would make Nmap read the rest as targets; "
            "give targets before the first `--`"
        )
    parsed = split_nmap_argv(args)
    if parsed.problems:
        raise UsageError(
            f"Nmap flags after `--`: {parsed.problems[0]} (flan passes on only options Nmap "
            "7.93 knows, spelled in full; see `nmap --help`)"
        )
    if parsed.targets:
        raise UsageError(
            f"Nmap flags after `--`: {parsed.targets[0]!r} is not an option (Nmap would scan it "
            "as a target); give targets before `--` or in an -iL file"
        )
    return list(parsed.options)


@dataclass(frozen=True)
class PassThrough:
    """The user's Nmap flags, checked, with what the scan engine needs to know about them."""

    options: tuple[NmapOption, ...] = ()

    @classmethod
    def parse(cls, args: Sequence[str]) -> PassThrough:
        """Check the flags: refuse what flan sets itself (output, targets, excludes) and what
        could reach beyond the targets or write files (see `_nmapopts.REFUSED`)."""
        options = split_options(args)
        for opt in options:
            reason = refusal(opt)
            if reason is not None:
                raise UsageError(
                    f"Nmap flags after `--`: {opt.spelled} is not allowed: it {reason}"
                )
        return cls(tuple(options))

    @property
    def words(self) -> list[str]:
        return [w for opt in self.options for w in opt.words]

    def has(self, *names: str) -> bool:
        return any(opt.name in names for opt in self.options)

    def value(self, name: str) -> str | None:
        values = [opt.value for opt in self.options if opt.name == name]
        return values[-1] if values else None

    @property
    def ipv6(self) -> bool:
        return self.has("-6")

    @property
    def tcp_scan_type(self) -> str | None:
        """The TCP scan type the user chose (-sT, -sS ...), if any."""
        for opt in reversed(self.options):
            if opt.name in _TCP_SCAN_TYPES:
                return opt.name
        return None

    @property
    def udp(self) -> bool:
        return self.has("-sU")

    @property
    def port_spec(self) -> str | None:
        """The port scope the user asked for, in Nmap's words ("T:22,U:161", "top-100")."""
        if self.value("-p") is not None:
            return self.value("-p")
        if self.value("--top-ports") is not None:
            return f"top-{self.value('--top-ports')}"
        if self.has("-F"):
            return "top-100"
        return None

    def without(self, names: Sequence[str]) -> list[str]:
        """The argv words of every option except those named."""
        return [w for opt in self.options if opt.name not in names for w in opt.words]

    def discovery_words(self, drop: Sequence[str] = ()) -> list[str]:
        """Flags for the all-ports discovery phase: everything but the port spec and probes."""
        return self.without(
            (*_SERVICE_ONLY, "-p", "--top-ports", "--port-ratio", "-F", "-6", *drop)
        )

    def service_words(self) -> list[str]:
        """Flags for the service phase: everything but port spec and host discovery."""
        return self.without((*_PORT_SPEC, *_DISCOVERY_ONLY, "-6"))

    def resolves_names(self) -> bool:
        """True when the user asked for reverse DNS explicitly (so flan must not add -n)."""
        return self.has("-R", "--dns-servers", "--system-dns", "-n")
