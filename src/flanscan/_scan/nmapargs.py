"""The Nmap flags a user passes after `--`: split into options, checked, sorted by phase.

Nmap has no machine-readable option table, so the options that take a value are listed here;
an option we do not know is passed on untouched (Nmap itself reports a typo).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flanscan._errors import UsageError

# Long options that take a value (`--opt VALUE` or `--opt=VALUE`).
_LONG_WITH_VALUE = frozenset(
    """
    exclude excludefile exclude-ports top-ports port-ratio dns-servers source-port data
    data-string data-length ip-options ttl spoof-mac proxies proxy mtu scanflags script
    script-args script-args-file script-help script-timeout version-intensity max-os-tries
    min-hostgroup max-hostgroup min-parallelism max-parallelism min-rtt-timeout max-rtt-timeout
    initial-rtt-timeout max-retries host-timeout scan-delay max-scan-delay min-rate max-rate
    stylesheet datadir servicedb versiondb resume stats-every iflist-limit unique
    """.split()
)
# Short options whose value may be attached (-p22) or the next word (-p 22).
_SHORT_WITH_VALUE = ("-iL", "-iR", "-oN", "-oX", "-oS", "-oG", "-oA", "-oM", "-sI", "-p", "-e",
                     "-S", "-g", "-D", "-b")  # fmt: skip

_OUTPUT = ("-oN", "-oX", "-oS", "-oG", "-oA", "-oM")
_TARGET_INPUT = ("-iL", "-iR", "--resume")
_EXCLUDES = ("--exclude", "--excludefile")
_PORT_SPEC = ("-p", "--top-ports", "--port-ratio", "-F", "--exclude-ports", "-r")
_TCP_SCAN_TYPES = ("-sS", "-sT", "-sA", "-sW", "-sM", "-sN", "-sF", "-sX", "-sI", "--scanflags",
                   "-b")  # fmt: skip
# Options that only matter once ports are known: run in the service phase of --ports all.
_SERVICE_ONLY = ("-sV", "-sC", "-A", "-O", "--script", "--script-args", "--script-args-file",
                 "--script-timeout", "--version-intensity", "--version-light", "--version-all",
                 "--version-trace", "--osscan-limit", "--osscan-guess", "--max-os-tries",
                 "--script-trace", "--script-updatedb")  # fmt: skip
# Host discovery options: meaningless for a service probe of a host already known to be up.
_DISCOVERY_ONLY = ("-Pn", "-PS", "-PA", "-PU", "-PY", "-PE", "-PP", "-PM", "-PO", "-PR", "-sn",
                   "--disable-arp-ping", "--traceroute", "-n", "-R", "--dns-servers",
                   "--system-dns", "--resolve-all")  # fmt: skip


@dataclass(frozen=True)
class NmapOption:
    """One option (with its value, if any) exactly as the user wrote it, and its name."""

    name: str  # "-p", "--min-rate", "-sU", "-T" ...
    words: tuple[str, ...]  # the argv words: ("-p", "22") or ("-p22",)
    value: str | None = None


def _option_name(word: str) -> tuple[str, str | None]:
    """The option a word starts, and a value attached to it (`-p22`, `--min-rate=100`)."""
    if word.startswith("--"):
        name, eq, value = word.partition("=")
        return name, (value if eq else None)
    for short in _SHORT_WITH_VALUE:
        if word.startswith(short):
            return short, (word[len(short) :] or None)
    if word.startswith(("-P", "-s", "-T")) and len(word) >= 3:
        return word[:3] if word[:2] in ("-P", "-s") else word[:2], None
    if word.startswith(("-v", "-d")):
        return word[:2], None
    return word, None


def split_options(args: Sequence[str]) -> list[NmapOption]:
    """Group pass-through argv words into options; a bare word (a target) is refused."""
    options = []
    i = 0
    while i < len(args):
        word = args[i]
        if not word.startswith("-") or word == "-":
            raise UsageError(
                f"Nmap flags after `--`: {word!r} is not an option; give targets before `--` "
                "or in an -iL file"
            )
        name, attached = _option_name(word)
        takes_value = name in _SHORT_WITH_VALUE or name.lstrip("-") in _LONG_WITH_VALUE
        if takes_value and attached is None:
            if i + 1 >= len(args):
                raise UsageError(f"Nmap flags after `--`: {word} needs a value")
            options.append(NmapOption(name, (word, args[i + 1]), args[i + 1]))
            i += 2
            continue
        options.append(NmapOption(name, (word,), attached))
        i += 1
    return options


@dataclass(frozen=True)
class PassThrough:
    """The user's Nmap flags, checked, with what the scan engine needs to know about them."""

    options: tuple[NmapOption, ...] = ()

    @classmethod
    def parse(cls, args: Sequence[str]) -> PassThrough:
        """Check the flags: refuse those flan sets itself (output, targets, excludes)."""
        options = split_options(args)
        for opt in options:
            if opt.name in _OUTPUT or opt.name == "--append-output":
                raise UsageError(
                    f"Nmap flags after `--`: {opt.name} is not allowed; flan writes Nmap's XML "
                    "to the run's xml/ directory itself (see --output-dir)"
                )
            if opt.name in _TARGET_INPUT:
                raise UsageError(
                    f"Nmap flags after `--`: {opt.name} is not allowed; give targets as "
                    "arguments or with flan's own -iL FILE"
                )
            if opt.name in _EXCLUDES:
                raise UsageError(
                    f"Nmap flags after `--`: {opt.name} is not allowed; use flan's "
                    "--exclude / --exclude-file"
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
