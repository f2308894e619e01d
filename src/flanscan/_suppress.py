"""Exception rules: suppress accepted findings, with a reason, an owner and an expiry date.

The rules live in a YAML file (`--suppressions FILE`, or `flan-suppressions.yaml` next to the
targets file). YAML because it is what operators already write, and because PyYAML's node tree
keeps the line of every value, so a bad rule is reported as `file:line`. Format and semantics:
docs/false-positives.md.

    suppressions:
      - cve: CVE-2023-48795
        cpe: cpe:/a:openbsd:openssh
        address: 198.18.0.0/24
        port: 22
        reason: Terrapin; chacha20-poly1305 and *-etm MACs are disabled in sshd_config
        owner: infra-team
        expires: 2027-03-31

A rule matches a finding when every matcher it has matches (cve, cpe, product, address, port,
protocol); it needs at least one. Expired rules stop suppressing and are reported; rules that
matched nothing are reported as unused.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from flanscan._errors import UsageError
from flanscan._model import (
    Finding,
    FindingStatus,
    Location,
    ServiceObservation,
    SuppressionRef,
)

DEFAULT_FILE_NAME = "flan-suppressions.yaml"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_MATCHERS = ("cve", "cpe", "product", "address", "port", "protocol")
_FIELDS = frozenset((*_MATCHERS, "reason", "owner", "expires", "allow_all"))
_CVE_RE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_CPE_RE = re.compile(r"^cpe:(?:/|2\.3:)[aoh](?::[^:\s]*)*$")
_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})


@dataclass(frozen=True)
class SuppressionRule:
    """One exception rule as written in the file."""

    source: str  # "path:line"
    reason: str
    owner: str
    expires: date | None = None
    cves: frozenset[str] = frozenset()
    cpes: tuple[tuple[str, ...], ...] = ()  # CPE components (part, vendor, product, version...)
    products: frozenset[str] = frozenset()  # lower case
    networks: tuple[Network, ...] = ()
    ports: frozenset[int] = frozenset()
    protocols: frozenset[str] = frozenset()

    def expired(self, today: date) -> bool:
        """An expiry date is the last day the rule applies."""
        return self.expires is not None and today > self.expires

    def matches(self, location: Location, service: ServiceObservation, finding: Finding) -> bool:
        """Whether every matcher of the rule matches this finding at this location."""
        if self.cves and finding.id.upper() not in self.cves:
            return False
        if self.products and (service.product or "").strip().lower() not in self.products:
            return False
        if self.cpes and not _cpe_matches(self.cpes, service, finding):
            return False
        if self.networks and not _address_in(location.address, self.networks):
            return False
        if self.ports and location.port not in self.ports:
            return False
        return not (self.protocols and location.protocol.lower() not in self.protocols)

    def describe(self) -> str:
        what = []
        if self.cves:
            what.append(", ".join(sorted(self.cves)))
        if self.products:
            what.append("product " + ", ".join(sorted(self.products)))
        if self.cpes:
            what.append("cpe " + ", ".join(":".join(c) for c in self.cpes))
        if self.networks:
            what.append("address " + ", ".join(_show(n) for n in self.networks))
        if self.ports:
            what.append("port " + ", ".join(str(p) for p in sorted(self.ports)))
        return f"{self.source} ({'; '.join(what)}; owner {self.owner})"

    def ref(self) -> SuppressionRef:
        expires = self.expires.isoformat() if self.expires else None
        return SuppressionRef(self.source, self.reason, self.owner, expires)


def _show(network: Network) -> str:
    """A single address without its /32 or /128."""
    single = network.prefixlen == network.max_prefixlen
    return str(network.network_address) if single else str(network)


def _cpe_parts(cpe: str) -> tuple[str, ...]:
    """CPE 2.2 URI or 2.3 formatted string -> (part, vendor, product, version, ...), lower case;
    trailing wildcards dropped so a rule's CPE is a prefix."""
    text = cpe.strip().lower()
    body = text[len("cpe:2.3:") :] if text.startswith("cpe:2.3:") else text[len("cpe:/") :]
    parts = body.split(":")
    while parts and parts[-1] in ("", "*", "-"):
        parts.pop()
    return tuple(parts)


def _cpe_matches(
    rules: tuple[tuple[str, ...], ...], service: ServiceObservation, f: Finding
) -> bool:
    detected = [_cpe_parts(c) for c in service.cpes]
    detected += [_cpe_parts(e.detected_cpe) for e in f.evidence if e.detected_cpe]
    return any(d[: len(r)] == r for r in rules for d in detected)


def _address_in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in networks)


@dataclass
class SuppressionSet:
    """Loaded rules, and which of them matched while findings were checked."""

    path: Path
    rules: tuple[SuppressionRule, ...]
    today: date
    _hits: dict[str, int] = dataclasses.field(default_factory=dict)
    _expired_hits: dict[str, int] = dataclasses.field(default_factory=dict)

    def apply(
        self, location: Location, service: ServiceObservation, findings: Sequence[Finding]
    ) -> list[Finding]:
        """Findings with open ones matched by an active rule marked suppressed (first rule wins).

        Findings already closed (fixed by the distribution, not affected) are left alone."""
        out: list[Finding] = []
        for finding in findings:
            if not finding.status.is_open:
                out.append(finding)
                continue
            rule = None
            for candidate in self.rules:
                if not candidate.matches(location, service, finding):
                    continue
                if candidate.expired(self.today):
                    self._expired_hits[candidate.source] = (
                        self._expired_hits.get(candidate.source, 0) + 1
                    )
                    continue
                rule = candidate
                break
            if rule is None:
                out.append(finding)
                continue
            self._hits[rule.source] = self._hits.get(rule.source, 0) + 1
            out.append(
                dataclasses.replace(
                    finding, status=FindingStatus.SUPPRESSED, suppression=rule.ref()
                )
            )
        return out

    def notes(self) -> list[str]:
        """Lines for the report: expired rules, and rules that matched nothing (call after
        every finding went through `apply`)."""
        lines: list[str] = []
        for rule in self.rules:
            if rule.expired(self.today):
                assert rule.expires is not None
                again = self._expired_hits.get(rule.source, 0)
                tail = f"; {again} finding(s) it matches are reported again" if again else ""
                lines.append(
                    f"suppression rule {rule.describe()} expired on "
                    f"{rule.expires.isoformat()} and no longer applies{tail}"
                )
            elif not self._hits.get(rule.source):
                lines.append(f"suppression rule {rule.describe()} matched no finding (unused)")
        return lines

    def hits(self, rule: SuppressionRule) -> int:
        """How many findings `rule` suppressed so far."""
        return self._hits.get(rule.source, 0)


# --------------------------------------------------------------------------- loading


MAX_ALIASES = 100


class _TooManyAliases(Exception):
    pass


class _AliasLimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting aliases: 90 KB of `*rule` lines, each repeating a rule of
    thousands of addresses, would otherwise cost gigabytes ("billion laughs")."""

    aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooManyAliases
        return super().compose_node(parent, index)


def default_suppressions_path(targets_file: Path | None) -> Path | None:
    """`flan-suppressions.yaml` beside the targets file, when it exists."""
    if targets_file is None:
        return None
    candidate = targets_file.parent / DEFAULT_FILE_NAME
    return candidate if candidate.is_file() else None


def load_suppressions(path: Path, today: date | None = None) -> SuppressionSet:
    """Read and check a suppression file; UsageError naming `file:line` for any bad rule."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{path}: cannot read suppression file ({exc}); check --suppressions"
        ) from None
    try:
        root = yaml.compose(text, Loader=_AliasLimitedLoader)
    except _TooManyAliases:
        raise UsageError(
            f"{path}: more than {MAX_ALIASES} YAML aliases (*name): each repeats a whole rule; "
            "write the rules out instead"
        ) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise UsageError(f"{path}:{line}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from None
    rules: list[SuppressionRule] = []
    if root is not None:
        for node in _rule_nodes(path, root):
            rules.append(_rule(path, node))
    return SuppressionSet(path=path, rules=tuple(rules), today=today or date.today())


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _err(path: Path, node: yaml.Node, message: str) -> UsageError:
    return UsageError(f"{path}:{_line(node)}: {message}")


def _rule_nodes(path: Path, root: yaml.Node) -> list[yaml.Node]:
    if isinstance(root, yaml.MappingNode):
        items = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        for key, _value in root.value:
            if key.value != "suppressions":
                raise _err(
                    path, key, f"unknown top-level key {key.value!r}: expected 'suppressions'"
                )
        root = items.get("suppressions") or yaml.SequenceNode("tag:yaml.org,2002:seq", [])
    if not isinstance(root, yaml.SequenceNode):
        raise _err(path, root, "expected a list of rules under 'suppressions:'")
    return list(root.value)


def _scalars(path: Path, node: yaml.Node, field: str) -> list[tuple[str, yaml.Node]]:
    """A scalar or a list of scalars, as (text, node) pairs."""
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out: list[tuple[str, yaml.Node]] = []
    for item in items:
        if not isinstance(item, yaml.ScalarNode) or str(item.value).strip() == "":
            raise _err(path, item, f"{field}: expected a value or a list of values")
        out.append((str(item.value).strip(), item))
    if not out:
        raise _err(path, node, f"{field}: empty list")
    return out


def _rule(path: Path, node: yaml.Node) -> SuppressionRule:
    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, "a rule must be a mapping of fields (cve:, reason:, owner: ...)")
    fields: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = str(key.value)
        if name not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise _err(path, key, f"unknown field {name!r} in suppression rule (known: {known})")
        if name in fields:
            raise _err(path, key, f"field {name!r} given twice in one rule")
        fields[name] = value
    source = f"{path}:{_line(node)}"
    for required in ("reason", "owner"):
        if required not in fields:
            raise _err(path, node, f"suppression rule has no {required!r}: every rule needs one")
    reason = _single(path, fields["reason"], "reason")
    owner = _single(path, fields["owner"], "owner")
    if not any(m in fields for m in _MATCHERS):
        raise _err(path, node, "rule matches nothing: give cve, cpe, product, address or port")
    kwargs: dict[str, object] = {}
    allow_all = False
    if "allow_all" in fields:
        text = _single(path, fields["allow_all"], "allow_all").lower()
        if text not in ("true", "false"):
            raise _err(path, fields["allow_all"], f"allow_all: {text!r} is not true or false")
        allow_all = text == "true"
    if "expires" in fields:
        text = _single(path, fields["expires"], "expires")
        try:
            kwargs["expires"] = date.fromisoformat(text)
        except ValueError:
            raise _err(
                path, fields["expires"], f"expires: {text!r} is not a date YYYY-MM-DD"
            ) from None
    if "cve" in fields:
        cves = set()
        for text, item in _scalars(path, fields["cve"], "cve"):
            if text.upper().startswith("CVE") and not _CVE_RE.match(text.upper()):
                raise _err(path, item, f"cve: {text!r} is not a CVE id (CVE-YYYY-NNNN)")
            cves.add(text.upper())
        kwargs["cves"] = frozenset(cves)
    if "cpe" in fields:
        cpes = []
        for text, item in _scalars(path, fields["cpe"], "cpe"):
            if not _CPE_RE.match(text.lower()) or len(_cpe_parts(text)) < 3:
                raise _err(path, item, f"cpe: {text!r} is not a CPE with vendor and product")
            cpes.append(_cpe_parts(text))
        kwargs["cpes"] = tuple(cpes)
    if "product" in fields:
        products = frozenset(t.lower() for t, _ in _scalars(path, fields["product"], "product"))
        kwargs["products"] = products
    if "address" in fields:
        networks = []
        for text, item in _scalars(path, fields["address"], "address"):
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as exc:
                raise _err(
                    path, item, f"address: {text!r} is not an IP address or CIDR ({exc})"
                ) from None
        kwargs["networks"] = tuple(networks)
    if "port" in fields:
        ports = set()
        for text, item in _scalars(path, fields["port"], "port"):
            if not text.isdigit() or not 0 < int(text) < 65536:
                raise _err(path, item, f"port: {text!r} is not a port number 1-65535")
            ports.add(int(text))
        kwargs["ports"] = frozenset(ports)
    if "protocol" in fields:
        protocols = set()
        for text, item in _scalars(path, fields["protocol"], "protocol"):
            if text.lower() not in _PROTOCOLS:
                raise _err(path, item, f"protocol: {text!r} is not tcp, udp or sctp")
            protocols.add(text.lower())
        kwargs["protocols"] = frozenset(protocols)
    networks_given = kwargs.get("networks", ())
    everywhere = not networks_given or any(
        n.prefixlen == 0
        for n in networks_given  # type: ignore[attr-defined]
    )
    if everywhere and not allow_all:
        # A rule for every address hides a finding on hosts nobody thought of: say it on purpose.
        raise _err(
            path,
            node,
            "rule applies to every address: add address: (the hosts or networks it is for), "
            "or allow_all: true to mean every address",
        )
    return SuppressionRule(source=source, reason=reason, owner=owner, **kwargs)  # type: ignore[arg-type]


def _single(path: Path, node: yaml.Node, field: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise _err(path, node, f"{field}: expected a non-empty text value")
    return str(node.value).strip()
