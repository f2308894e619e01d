"""Nmap 7.93's command-line options: the one table of them in flan, and argv read as Nmap reads it.

Every reader of an Nmap command line uses this module: the flags a user passes through to Nmap
(`_scan/nmapargs.py`) and the command lines saved in Nmap XML (`_report.py`). Two tables that
disagree let a value pass for a target (`--unique 127.0.0.2`, `--script-timeout 30s`).

Nmap reads its argv with glibc's getopt_long_only() (nmap.cc, `parse_options`), so
`split_nmap_argv` does the same: a long option takes one or two dashes (`-iL`, `--iL`), may be
abbreviated to a unique prefix (`--app` is `--append-output`), takes `--opt=value`; a single-dash
word that is no long option (nor a prefix of one) is a bundle of short options whose value may be
attached (`-p22`, `-oX-` is `-o` with the value `X-`, `-nvA` is `-n -v A`); `--` ends the options
and every other word is a target. No library parses argv the getopt way (argparse and click do not
take `-iL` as a long option), hence this code.

The table is nmap.cc's `long_options` and short-option string of Nmap 7.93;
tests/test_nmapopts.py checks it against the installed nmap.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Arity = Literal["none", "required", "optional"]

# nmap.cc (7.93): the third argument of getopt_long_only().
SHORT_OPTIONS = "46Ab:D:d::e:Ffg:hIi:M:m:nO::o:P::p:qRrS:s::T:Vv::"

# nmap.cc (7.93) `long_options`, in its order: name -> arity.
LONG_OPTIONS: dict[str, Arity] = {
    name: arity  # type: ignore[misc]
    for name, arity in (
        line.split()
        for line in """
        version none
        verbose none
        datadir required
        servicedb required
        versiondb required
        debug optional
        help none
        iflist none
        release-memory none
        nogcc none
        max-os-tries required
        max-parallelism required
        min-parallelism required
        timing required
        max-rtt-timeout required
        min-rtt-timeout required
        initial-rtt-timeout required
        excludefile required
        exclude required
        max-hostgroup required
        min-hostgroup required
        open none
        scanflags required
        defeat-rst-ratelimit none
        defeat-icmp-ratelimit none
        host-timeout required
        scan-delay required
        max-scan-delay required
        max-retries required
        oA required
        oN required
        oM required
        oG required
        oS required
        oH required
        oX required
        iL required
        iR required
        sI required
        source-port required
        randomize-hosts none
        nsock-engine required
        proxies required
        proxy required
        discovery-ignore-rst none
        osscan-limit none
        osscan-guess none
        fuzzy none
        packet-trace none
        version-trace none
        data required
        data-string required
        data-length required
        send-eth none
        send-ip none
        stylesheet required
        no-stylesheet none
        webxml none
        rH none
        vv none
        ff none
        privileged none
        unprivileged none
        mtu required
        append-output none
        noninteractive none
        spoof-mac required
        thc none
        badsum none
        ttl required
        traceroute none
        reason none
        allports none
        version-intensity required
        version-light none
        version-all none
        system-dns none
        resolve-all none
        unique none
        log-errors none
        deprecated-xml-osclass none
        yoloscan none
        dns-servers required
        port-ratio required
        exclude-ports required
        top-ports required
        script required
        script-trace none
        script-updatedb none
        script-args required
        script-args-file required
        script-help required
        script-timeout required
        ip-options required
        min-rate required
        max-rate required
        adler32 none
        stats-every required
        disable-arp-ping none
        route-dst required
        resume required
        """.strip().splitlines()
    )
}

# Long options Nmap handles as a short one (their `val` in long_options is a letter).
LONG_AS_SHORT = {
    "version": "V",
    "verbose": "v",
    "debug": "d",
    "help": "h",
    "max-parallelism": "M",
    "timing": "T",
    "source-port": "g",
}


def _short_arities(spec: str) -> dict[str, Arity]:
    out: dict[str, Arity] = {}
    i = 0
    while i < len(spec):
        letter = spec[i]
        colons = len(spec[i + 1 :]) - len(spec[i + 1 :].lstrip(":"))
        out[letter] = "none" if colons == 0 else ("required" if colons == 1 else "optional")
        i += 1 + colons
    return out


SHORT_ARITY: dict[str, Arity] = _short_arities(SHORT_OPTIONS)


@dataclass(frozen=True)
class NmapArg:
    """One option as Nmap reads it.

    `name` is how Nmap's help names it: "--min-rate", "-p", "-T" (also for `--timing`), and one
    option per letter of `-s` and `-P` ("-sS", "-sV", "-PS" with value "22", "-Pn").
    `spelled` is what the user wrote ("--iL", "-i", "--app"); `words` are argv words that give
    this option alone to Nmap.
    """

    name: str
    value: str | None
    spelled: str
    words: tuple[str, ...]
    index: int = 0  # position of its (first) word in argv
    abbreviated: bool = False  # a prefix of a long option (`--app` for `--append-output`)


@dataclass(frozen=True)
class NmapArgv:
    """An Nmap argv split as Nmap splits it: options, targets, and what Nmap would refuse."""

    options: tuple[NmapArg, ...]
    targets: tuple[str, ...]
    problems: tuple[str, ...]  # one line each: unknown, ambiguous, missing value ...


def _match_long(text: str) -> tuple[str | None, list[str]]:
    """(exact or unique-prefix long option, all candidates) for `text` (before any `=`)."""
    if text in LONG_OPTIONS:
        return text, [text]
    candidates = [name for name in LONG_OPTIONS if name.startswith(text)]
    # getopt_long_only: any two prefix matches are ambiguous, whatever their arities.
    return (candidates[0] if len(candidates) == 1 else None), candidates


def _render_short(letter: str, value: str | None) -> tuple[str, ...]:
    arity = SHORT_ARITY[letter]
    if arity == "required":
        assert value is not None
        return (f"-{letter}", value)
    return (f"-{letter}{value or ''}",)


def _short_args(letter: str, value: str | None, spelled: str, index: int) -> list[NmapArg]:
    """-s and -P: one option per scan type or probe, as Nmap's help names them."""
    if letter == "s" and value:
        return [NmapArg(f"-s{c}", None, spelled, (f"-s{c}",), index) for c in value]
    if letter == "P" and value:
        rest = value[1:] or None
        return [NmapArg(f"-P{value[0]}", rest, spelled, (f"-P{value}",), index)]
    return [NmapArg(f"-{letter}", value, spelled, _render_short(letter, value), index)]


def split_nmap_argv(args: Sequence[str]) -> NmapArgv:
    """Split argv (without the program name) into options and targets the way Nmap 7.93 does."""
    options: list[NmapArg] = []
    targets: list[str] = []
    problems: list[str] = []
    i = 0
    while i < len(args):
        index, word = i, args[i]
        i += 1
        if word == "--":
            targets.extend(args[i:])
            break
        if not word.startswith("-") or word == "-":
            targets.append(word)
            continue
        double = word.startswith("--")
        body = word[2:] if double else word[1:]
        if double or len(body) > 1 or body[:1] not in SHORT_ARITY:
            text, eq, attached = body.partition("=")
            found, candidates = _match_long(text)
            if found is None and len(candidates) > 1:
                problems.append(f"option {word} is ambiguous ({', '.join(candidates)})")
                continue
            if found is not None:
                arity = LONG_OPTIONS[found]
                if eq and arity == "none":
                    problems.append(f"option --{found} takes no value ({word})")
                    continue
                value: str | None = attached if eq else None
                used: tuple[str, ...] = (word,)
                if arity == "required" and not eq:
                    if i >= len(args):
                        problems.append(f"option {word} needs a value")
                        continue
                    value, used = args[i], (word, args[i])
                    i += 1
                spelled = word.partition("=")[0]
                short = LONG_AS_SHORT.get(found)
                names = (
                    [a.name for a in _short_args(short, value, spelled, index)]
                    if short is not None
                    else [f"--{found}"]
                )
                for name in names:  # --timing 4 is -T 4: the same words give it
                    options.append(
                        NmapArg(name, value, spelled, used, index, abbreviated=found != text)
                    )
                continue
            if double or body[:1] not in SHORT_ARITY:
                problems.append(f"unrecognized option {word}")
                continue
        bundle, i, problem = _short_bundle(args, index, i)
        if problem:
            problems.append(problem)
        options.extend(bundle)
    return NmapArgv(tuple(options), tuple(targets), tuple(problems))


def _short_bundle(args: Sequence[str], index: int, i: int) -> tuple[list[NmapArg], int, str | None]:
    """Short options in one word (-nvA, -p22, -oX- is -o X-): (options, next word, problem)."""
    word = args[index]
    body = word[1:]
    bundle: list[NmapArg] = []
    took_next = False
    k = 0
    while k < len(body):
        letter = body[k]
        k += 1
        arity = SHORT_ARITY.get(letter)
        if arity is None:
            return [], i, f"invalid option -{letter} in {word}"
        if arity == "none":
            bundle.extend(_short_args(letter, None, f"-{letter}", index))
            continue
        rest, k = body[k:], len(body)
        if arity == "optional" or rest:
            bundle.extend(_short_args(letter, rest or None, f"-{letter}", index))
        elif i < len(args):
            bundle.extend(_short_args(letter, args[i], f"-{letter}", index))
            took_next = True
            if len(bundle) == 1:  # keep the user's own words: `-p 22`
                bundle = [dataclasses.replace(bundle[0], words=(word, args[i]))]
            i += 1
        else:
            return [], i, f"option -{letter} needs a value ({word})"
    if len(bundle) == 1 and not took_next:  # keep the user's own word: `-p22`
        bundle = [dataclasses.replace(bundle[0], words=(word,))]
    return bundle, i, None


# --------------------------------------------------------------------------- flan's policy

OUTPUT = (
    "writes files (flan writes Nmap's XML to the run's xml/ directory itself; see --output-dir)"
)
TARGETS = "adds or replaces targets (give targets as arguments or with flan's own -iL FILE)"
EXCLUDES = "is flan's to set (use flan's --exclude / --exclude-file)"
DATA = "makes Nmap read its data files from another place"
STYLESHEET = "puts a stylesheet address in the raw XML for a browser to fetch"
OUTSIDE = "sends traffic to a host that is not a target"
NOT_A_SCAN = "does not scan (help, version or debugging output)"
SCRIPT_FILES = "reads or writes NSE files flan cannot check"

# Why flan refuses an option after `--` (by its name as `NmapArg.name`). Everything else in the
# table is allowed; anything outside the table is refused as unknown.
REFUSED: dict[str, str] = {
    **dict.fromkeys(
        ("--oA", "--oN", "--oM", "--oG", "--oS", "--oH", "--oX", "-o", "-m", "--append-output"),
        OUTPUT,
    ),
    **dict.fromkeys(("--iL", "--iR", "-i", "--resume"), TARGETS),
    **dict.fromkeys(("--exclude", "--excludefile"), EXCLUDES),
    **dict.fromkeys(("--datadir", "--servicedb", "--versiondb"), DATA),
    **dict.fromkeys(("--stylesheet", "--webxml"), STYLESHEET),
    **dict.fromkeys(("--sI", "-b", "--proxies", "--proxy", "--route-dst"), OUTSIDE),
    **dict.fromkeys(
        ("-h", "-V", "--iflist", "--thc", "--yoloscan", "--script-help", "-sL"), NOT_A_SCAN
    ),
    **dict.fromkeys(("--script-updatedb", "--script-args-file"), SCRIPT_FILES),
}

# NSE: categories whose every script stays on the targets and writes no file (checked against
# Nmap 7.93's script.db by tests/test_nmapopts.py).
SAFE_SCRIPT_CATEGORIES = frozenset({"default", "version", "malware", "fuzzer"})
SCRIPT_CATEGORIES = frozenset(
    "auth broadcast brute default discovery dos exploit external fuzzer intrusive malware safe "
    "version vuln all".split()
)
# Scripts that reach hosts that are not targets (broadcast-*: the local network; targets-*: add
# targets) or write files (Nmap 7.93 scripts that open a file for writing).
REFUSED_SCRIPT_PATTERNS = ("broadcast-*", "targets-*")
REFUSED_SCRIPTS = frozenset(
    "ajp-request cics-enum domino-enum-users hostmap-bfk hostmap-crtsh http-awstatstotals-exec "
    "http-axis2-dir-traversal http-config-backup http-domino-enum-passwords http-fetch "
    "http-majordomo2-dir-traversal http-phpmyadmin-dir-traversal http-tplink-dir-traversal "
    "http-wordpress-users ip-geolocation-map-bing ip-geolocation-map-google ip-geolocation-map-kml "
    "lu-enum ms-sql-dump-hashes oracle-brute-stealth shodan-api snmp-ios-config "
    "supermicro-ipmi-conf traceroute-geolocation url-snarf vtam-enum whois-ip".split()
)
# A script argument that lets scripts add targets to the scan.
REFUSED_SCRIPT_ARGS = ("newtargets",)
_SCRIPT_WORD = re.compile(r"[^\s,()]+")


@functools.cache
def installed_scripts() -> frozenset[str]:
    """Names of the NSE scripts of the installed Nmap (empty when they cannot be found)."""
    nmap = shutil.which("nmap")
    places = [Path("/usr/share/nmap/scripts")]
    if nmap is not None:
        places.insert(0, Path(nmap).resolve().parent.parent / "share" / "nmap" / "scripts")
    for place in places:
        names = frozenset(p.stem for p in place.glob("*.nse")) if place.is_dir() else frozenset()
        if names:
            return names
    return frozenset()


def _refused_script(name: str) -> bool:
    return name in REFUSED_SCRIPTS or any(
        fnmatch.fnmatchcase(name, p) for p in REFUSED_SCRIPT_PATTERNS
    )


def script_problem(selection: str) -> str | None:
    """Why `--script SELECTION` is refused (a category, pattern or file flan cannot vouch for),
    or None."""
    samples = [p.replace("*", "x") for p in REFUSED_SCRIPT_PATTERNS]
    for word in _SCRIPT_WORD.findall(selection.lower()):
        if word in ("and", "or", "not"):
            continue
        if "/" in word or "\\" in word or word.startswith("."):
            return f"script {word!r} is a file path: only Nmap's installed scripts can be run"
        name = word.lstrip("+").removesuffix(".nse")  # +name forces a script to run
        if any(c in name for c in "?[]"):
            return f"script pattern {word!r}: write script names, or patterns with * only"
        if name in SCRIPT_CATEGORIES and name not in SAFE_SCRIPT_CATEGORIES:
            return (
                f"script category {name!r} includes scripts that reach hosts which are not "
                "targets or write files; name the scripts you want instead"
            )
        for script in sorted({*installed_scripts(), *REFUSED_SCRIPTS, *samples}):
            if _refused_script(script) and fnmatch.fnmatchcase(script, name):
                return (
                    f"script {word!r} selects {script}, which reaches hosts that are not "
                    "targets or writes files"
                )
    return None


def script_args_problem(value: str) -> str | None:
    """Why `--script-args VALUE` is refused, or None."""
    for key in REFUSED_SCRIPT_ARGS:
        if re.search(rf"(^|[\s,{{]){re.escape(key)}\s*(=|,|$|\s|}})", value):
            return f"script argument {key} lets scripts add targets"
    return None


def refusal(arg: NmapArg) -> str | None:
    """Why flan refuses this pass-through option, or None when it may go to Nmap."""
    if arg.name in REFUSED:
        return REFUSED[arg.name]
    if arg.abbreviated:
        return f"is an abbreviation: write {arg.name} in full"
    if arg.name == "--script" and arg.value is not None:
        return script_problem(arg.value)
    if arg.name == "--script-args" and arg.value is not None:
        return script_args_problem(arg.value)
    return None


# --------------------------------------------------------------------------- secrets

MASK = "***"
# Options whose value may hold secrets (credentials for NSE scripts): never shown.
SECRET_OPTIONS = frozenset({"--script-args"})


def mask_argv(args: Sequence[str]) -> list[str]:
    """argv (without the program name) with the value of every secret option replaced by ***;
    other words unchanged."""
    out = list(args)
    for arg in split_nmap_argv(args).options:
        if arg.name not in SECRET_OPTIONS or arg.value is None:
            continue
        if len(arg.words) == 2:
            out[arg.index + 1] = MASK
        else:
            out[arg.index] = arg.words[0][: len(arg.words[0]) - len(arg.value)] + MASK
    return out


def mask_command(command: str) -> str:
    """An Nmap command line (`nmap ...`, shell words) with secret option values as ***."""
    import shlex

    if not any(name.lstrip("-") in command for name in SECRET_OPTIONS):
        return command
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    if not words:
        return command
    return shlex.join([words[0], *mask_argv(words[1:])])


def mask_profile(text: str) -> str:
    """A run's profile description with the values of secret options in its "extra Nmap flags:"
    part as *** (older run.json files wrote them as given)."""
    import shlex

    head, marker, flags = text.partition("extra Nmap flags: ")
    if not marker:
        return text
    try:
        words = shlex.split(flags)
    except ValueError:
        return text if not any(n.lstrip("-") in flags for n in SECRET_OPTIONS) else head + marker
    return head + marker + shlex.join(mask_argv(words))


# --------------------------------------------------------------------------- saved command lines


@dataclass(frozen=True)
class NmapArgs:
    """What an Nmap command line says about scope: targets, excludes, input lists, ports."""

    targets: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    input_lists: tuple[str, ...] = ()
    ports: str | None = None


def parse_nmap_args(args: str) -> NmapArgs:
    """Split an Nmap command line (as in `<nmaprun args=...>`) into targets and scope."""
    import shlex

    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    excluded: list[str] = []
    lists: list[str] = []
    ports: str | None = None
    fast = scan_only_hosts = False
    # words[0] is the nmap executable; the options are read with Nmap's own table.
    parsed = split_nmap_argv(words[1:])
    for opt in parsed.options:
        value = opt.value
        if opt.name == "-F":
            fast = True
        elif opt.name in ("-sn", "-sP"):
            scan_only_hosts = True
        elif value is None:
            continue
        elif opt.name == "-p":
            ports = "1-65535" if value == "-" else value
        elif opt.name == "--top-ports":
            ports = f"top-{value}"
        elif opt.name == "--exclude":
            excluded.extend(v for v in value.split(",") if v)
        elif opt.name == "--excludefile":
            excluded.append(f"@{value}")
        elif opt.name in ("--iL", "-i"):
            lists.append(value)
    targets = [t for t in parsed.targets if t != "-"]
    if ports is None and not scan_only_hosts:
        ports = "top-100" if fast else "top-1000"
    return NmapArgs(tuple(targets), tuple(excluded), tuple(lists), ports)


# --------------------------------------------------------------------------- port lists

PortProtocol = Literal["tcp", "udp", "sctp", "ip"]
_PORT_PREFIX: dict[str, PortProtocol] = {"T": "tcp", "U": "udp", "S": "sctp", "P": "ip"}
_PORT_ITEM = re.compile(r"(\d*)-(\d*)|(\d+)")


@dataclass(frozen=True)
class PortRange:
    """One item of an Nmap port list: ports `first`..`last` of `protocol` (None: every
    protocol the scan covers, as Nmap reads an item before any T:/U:/S: prefix)."""

    protocol: PortProtocol | None
    first: int
    last: int


class PortListError(ValueError):
    """A port list that is not in Nmap's numeric notation; the message says which item."""


def parse_port_list(text: str) -> tuple[PortRange, ...]:
    """Nmap's numeric `-p` notation ("22,80,8000-8100", "T:22,U:53,161", "1-", "-"): each
    comma-separated item with the protocol prefix in force. Service names and `[...]` forms
    are not read (raise PortListError, as does a port outside 0-65535 or an empty list)."""
    ranges: list[PortRange] = []
    protocol: PortProtocol | None = None
    for item in text.split(","):
        raw = item.strip()
        if len(raw) >= 2 and raw[1] == ":" and raw[0].upper() in _PORT_PREFIX:
            protocol = _PORT_PREFIX[raw[0].upper()]
            raw = raw[2:]
        match = _PORT_ITEM.fullmatch(raw)
        if match is None:
            raise PortListError(f"{item.strip() or 'an empty item'!r} is not a port or range")
        if match.group(3) is not None:
            first = last = int(match.group(3))
        else:
            first, last = int(match.group(1) or 1), int(match.group(2) or 65535)
        top = 255 if protocol == "ip" else 65535
        if last > top or first > last:
            raise PortListError(f"{item.strip()!r} is outside 0-{top} or reversed")
        ranges.append(PortRange(protocol, first, last))
    return tuple(ranges)
