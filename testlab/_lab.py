"""The network-namespace lab: test hosts running real Debian daemons, and a scanner namespace.

Layout (lab named ``flanlab``; every name below is prefixed with the lab's name)::

    flanlab-scan    bridge br0 198.18.0.1/24, fd00:f1a5::1/64; no other route (no default)
      |-- veth --  flanlab-ssh1   198.18.0.11 fd00:f1a5::11   sshd 22, nginx 80
      |-- veth --  flanlab-ssh2   198.18.0.12                 sshd 22, Apache httpd 80
      |-- veth --  flanlab-db     198.18.0.13                 PostgreSQL 5432, Redis 6379
      |-- veth --  flanlab-files  198.18.0.14                 vsftpd 21, memcached 11211 (+UDP)
      |-- veth --  flanlab-empty  198.18.0.15                 nothing open (answers ping)
      `-- veth --  flanlab-banner 198.18.0.20 fd00:f1a5::20   Python banner server (on demand)

Every host is also named ``<host>.flanlab.test`` in the scanner namespace's /etc/hosts.

All interfaces live inside the lab's namespaces (none in the machine's own namespace), so several
labs can exist at once under different names. A lab holds an exclusive lock on its name while it
runs; a lab that finds its name unlocked but its namespaces present treats them as leftovers of a
crashed run and removes them (killing every process inside) before building anew.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testlab._daemons import (
    DAEMONS,
    Daemon,
    DaemonContext,
    Launch,
    nmap_cpe,
    package_version,
    upstream_version,
)

STATE_ROOT = Path("/run/flanlab")
DEFAULT_NAME = "flanlab"
IPV4_PREFIX = "198.18.0."
IPV6_PREFIX = "fd00:f1a5::"
LAB_IPV4_NET = "198.18.0.0/24"
LAB_IPV6_NET = "fd00:f1a5::/64"
SCANNER_IPV4 = "198.18.0.1"
SCANNER_IPV6 = "fd00:f1a5::1"
BRIDGE = "br0"
READY_TIMEOUT = 30.0
_DAEMON_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C"}


class LabError(RuntimeError):
    """The lab could not be built or changed; the message names the daemon and its log."""


class LabUnavailable(LabError):
    """This machine cannot host the lab (not root, no ip netns, a daemon or nmap missing)."""


@dataclass(frozen=True)
class LabService:
    """One service of a lab host, with what Nmap is expected to report for it.

    ``package_version`` is read from dpkg when the lab is built; ``nmap_version`` is derived from
    it (``None`` when Nmap cannot read an exact version from the wire, as for PostgreSQL).
    """

    port: int
    protocol: str
    daemon: str
    debian_package: str | None
    nmap_product: str | None
    package_version: str | None
    nmap_service: str | None = None
    nmap_version: str | None = None
    upstream_version: str | None = None
    nmap_cpe: str | None = None


@dataclass(frozen=True)
class LabHost:
    """A lab host: its namespace, addresses and services (each listens on every address).

    ``services`` are the TCP services. ``udp_services`` are kept apart (memcached's UDP port):
    Nmap 7.93 sees the port open but cannot name it (memcached 1.6 answers in two datagrams and
    Nmap's probe expects one), so their ``nmap_*`` fields are ``None``.

    ``hostname`` resolves to the host's addresses inside the scanner namespace (its /etc/hosts),
    so Nmap reports it as the host's PTR name.
    """

    name: str
    namespace: str
    ipv4: str
    ipv6: str | None
    services: list[LabService] = field(default_factory=list)
    hostname: str | None = None
    udp_services: list[LabService] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [self.ipv4] + ([self.ipv6] if self.ipv6 else [])

    def service(self, daemon: str, protocol: str = "tcp") -> LabService:
        """The service of ``daemon`` on this host (its TCP one unless ``protocol`` says)."""
        for s in self.all_services:
            if s.daemon == daemon and s.protocol == protocol:
                return s
        raise KeyError(f"host {self.name} runs no {daemon} on {protocol}")

    def sockets(self, daemon: str) -> list[tuple[str, int]]:
        """(protocol, port) of every socket ``daemon`` opens on this host."""
        return [(s.protocol, s.port) for s in self.all_services if s.daemon == daemon]

    @property
    def all_services(self) -> list[LabService]:
        """TCP and UDP services."""
        return [*self.services, *self.udp_services]

    @property
    def daemons(self) -> list[str]:
        """The daemons running on this host, in manifest order, each once."""
        return list(dict.fromkeys(s.daemon for s in self.all_services))


@dataclass(frozen=True)
class ServiceLocation:
    """One place a service can be found: host, address and the service there."""

    host: LabHost
    address: str
    service: LabService


@dataclass(frozen=True)
class HostSpec:
    name: str
    octet: int
    ipv6: bool
    services: tuple[tuple[str, int], ...]


HOSTNAME_DOMAIN = "flanlab.test"  # RFC 6761 reserved name: never resolves outside the lab
HOST_SPECS: tuple[HostSpec, ...] = (
    HostSpec("ssh1", 11, True, (("sshd", 22), ("nginx", 80))),
    HostSpec("ssh2", 12, False, (("sshd", 22), ("apache2", 80))),
    HostSpec("db", 13, False, (("postgres", 5432), ("redis", 6379))),
    HostSpec("files", 14, False, (("vsftpd", 21), ("memcached", 11211))),
    HostSpec("empty", 15, False, ()),
)
BANNER_SPEC = HostSpec("banner", 20, True, ())
BANNER_DAEMON = "banner"


def manifest(name: str = DEFAULT_NAME, hosts: Sequence[str] | None = None) -> list[LabHost]:
    """The lab's hosts and services as a lab named ``name`` would have them, without building
    it (versions read from dpkg now; raises LookupError if a daemon's package is missing)."""
    return Lab(name, hosts=hosts)._planned_hosts()


def requirement_problems() -> list[str]:
    """What this machine lacks to build the lab (empty when it can); each item names the gap."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("not running as root (the lab creates network namespaces)")
    if shutil.which("ip") is None:
        problems.append("the `ip` command (Debian package iproute2) is missing")
    if shutil.which("nmap") is None:
        problems.append("nmap is missing (apt-get install nmap)")
    for tool, pkg in (
        ("ss", "iproute2"),
        ("setpriv", "util-linux"),
        ("ssh-keygen", "openssh-client"),
    ):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is missing (Debian package {pkg})")
    for daemon in DAEMONS.values():
        if not Path(daemon.binary).exists():
            problems.append(
                f"{daemon.name} binary {daemon.binary} is missing "
                f"(Debian package {daemon.debian_package}; run scripts/setup --test)"
            )
    if not problems:
        probe = f"flanprobe{os.getpid()}"
        r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"`ip netns add` does not work here: {r.stderr.strip()}")
        else:
            subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return problems


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise LabError(f"command failed ({r.returncode}): {' '.join(argv)}: {r.stderr.strip()}")
    return r


def _netns_list() -> list[str]:
    r = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _netns_pids(ns: str) -> list[int]:
    r = _run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _listening(ns: str) -> set[tuple[str, str, int]]:
    """(protocol, address, port) of every listening TCP and bound UDP socket in namespace ``ns``."""
    r = _run(["ip", "netns", "exec", ns, "ss", "-Hlntu"], check=False)
    out: set[tuple[str, str, int]] = set()
    for line in r.stdout.splitlines():
        cols = line.split()
        if len(cols) < 5 or cols[0] not in ("tcp", "udp"):
            continue
        addr, _, port = cols[4].rpartition(":")
        addr = addr.strip("[]").split("%")[0]
        if port.isdigit():
            out.add((cols[0], addr, int(port)))
    return out


def _netns_etc(ns: str) -> Path:
    return Path("/etc/netns") / ns


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def cleanup(name: str, state_root: Path = STATE_ROOT) -> list[str]:
    """Remove every namespace of lab ``name`` (killing all processes inside) and its state dir.

    Returns the namespaces removed. Safe to call when nothing exists.
    """
    prefix = f"{name}-"
    namespaces = [ns for ns in _netns_list() if ns.startswith(prefix)]
    for ns in namespaces:
        for pid in _netns_pids(ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    for ns in namespaces:
        while time.monotonic() < deadline and any(_pid_alive(p) for p in _netns_pids(ns)):
            time.sleep(0.02)
        _run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(_netns_etc(ns), ignore_errors=True)
    for etc in Path("/etc/netns").glob(f"{prefix}*"):
        shutil.rmtree(etc, ignore_errors=True)
    shutil.rmtree(state_root / name, ignore_errors=True)
    return namespaces


class Lab:
    """The lab. ``with Lab() as lab:`` builds it and removes it afterwards.

    ``name`` prefixes every namespace; ``None`` picks the first free name (``flanlab``,
    ``flanlab2``, ...) so concurrent test sessions on one machine get separate labs.
    ``hosts`` limits the lab to some host names (default: all).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        state_root: Path = STATE_ROOT,
        hosts: Sequence[str] | None = None,
    ) -> None:
        if name is not None and not re.fullmatch(r"[a-z][a-z0-9]{0,11}", name):
            # No hyphen: every namespace is "<name>-<host>", so names must not prefix each other.
            raise ValueError(f"lab name {name!r}: use 1-12 lowercase letters and digits")
        self._requested_name = name
        self.name = name or DEFAULT_NAME
        self.state_root = state_root
        self._specs = [s for s in HOST_SPECS if hosts is None or s.name in hosts]
        if hosts is not None:
            unknown = set(hosts) - {s.name for s in HOST_SPECS}
            if unknown:
                raise ValueError(f"unknown lab hosts: {sorted(unknown)}")
        self.hosts: list[LabHost] = []
        self.banner_host: LabHost | None = None
        self._procs: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self._lock_fd: int | None = None
        self._is_up = False

    # --- names and paths --------------------------------------------------------------------

    @property
    def scanner_namespace(self) -> str:
        return f"{self.name}-scan"

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.name

    def namespace(self, host: str) -> str:
        return f"{self.name}-{host}"

    def host(self, name: str) -> LabHost:
        for h in [*self.hosts, *([self.banner_host] if self.banner_host else [])]:
            if h.name == name:
                return h
        raise KeyError(f"no lab host named {name}")

    @property
    def targets(self) -> list[str]:
        """IPv4 addresses of every lab host (the banner host excluded)."""
        return [h.ipv4 for h in self.hosts]

    @property
    def targets6(self) -> list[str]:
        """IPv6 addresses of the hosts that have one (scan them with ``nmap -6``)."""
        return [h.ipv6 for h in self.hosts if h.ipv6]

    def service_locations(self, *, ipv6: bool = False) -> list[ServiceLocation]:
        """Every (host, address, service) of the manifest: IPv4 addresses, or IPv6 ones."""
        out: list[ServiceLocation] = []
        for h in self.hosts:
            addr = h.ipv6 if ipv6 else h.ipv4
            if addr:
                out.extend(ServiceLocation(h, addr, s) for s in h.services)
        return out

    def log_path(self, host: str, daemon: str) -> Path:
        return self.state_dir / host / daemon / f"{daemon}.log"

    # --- running commands in the scanner namespace --------------------------------------------

    def netns_argv(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        user: str | None = None,
        namespace: str | None = None,
    ) -> list[str]:
        """``argv`` prefixed to run inside the scanner namespace (optionally as ``user``)."""
        ns = namespace or self.scanner_namespace
        prefix = ["ip", "netns", "exec", ns]
        if user is not None:
            prefix += _setpriv(user)
        return prefix + [os.fspath(a) for a in argv]

    def exec(
        self, argv: Sequence[str | os.PathLike[str]], *, user: str | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside the scanner namespace; keyword arguments go to subprocess.run.

        ``user="nobody"`` drops root (setpriv) so a command runs unprivileged.
        """
        return subprocess.run(self.netns_argv(argv, user=user), **kwargs)

    def popen(
        self, argv: Sequence[str | os.PathLike[str]], *, user: str | None = None, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Like :meth:`exec` but returns the running process."""
        return subprocess.Popen(self.netns_argv(argv, user=user), **kwargs)

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> Lab:
        """Build the lab: clean leftovers, make namespaces, start daemons, wait for listening."""
        if self._is_up:
            return self
        problems = requirement_problems()
        if problems:
            raise LabUnavailable("; ".join(problems))
        self._acquire_name()
        try:
            cleanup(self.name, self.state_root)
            self.state_dir.mkdir(parents=True, mode=0o755)
            self.state_root.chmod(0o755)
            self.hosts = self._planned_hosts()
            self._build_network()
            self._write_state()
            self._start_all()
            self._is_up = True
            self._write_state()
        except BaseException:
            self._teardown()
            raise
        return self

    def down(self) -> None:
        """Kill every process of the lab, delete its namespaces and state. Idempotent."""
        self._teardown()

    def _teardown(self) -> None:
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        # An automatic lab that never got its name owns nothing: leave "flanlab" alone.
        if self._lock_fd is not None or self._requested_name is not None:
            cleanup(self.name, self.state_root)
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()
        self._is_up = False
        self.banner_host = None
        self._release_name()

    # --- name lock ----------------------------------------------------------------------------

    def _lock_path(self, name: str) -> Path:
        return self.state_root / f".{name}.lock"

    def _try_lock(self, name: str) -> int | None:
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(self._lock_path(name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _acquire_name(self) -> None:
        if self._lock_fd is not None:
            return
        if self._requested_name is not None:
            fd = self._try_lock(self.name)
            if fd is None:
                raise LabError(
                    f"lab {self.name} is in use by another process "
                    f"(lock {self._lock_path(self.name)})"
                )
            self._lock_fd = fd
            return
        for i in range(1, 100):
            name = DEFAULT_NAME if i == 1 else f"{DEFAULT_NAME}{i}"
            # A lab brought up by hand (`python -m testlab up`) is kept: never reuse its name.
            if (self.state_root / name / "manual").exists():
                continue
            fd = self._try_lock(name)
            if fd is not None:
                self.name = name
                self._lock_fd = fd
                return
        raise LabError("no free lab name (flanlab .. flanlab99 all in use)")

    def _release_name(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def keep_after_exit(self) -> None:
        """Mark this lab as kept by hand: automatic labs will not reuse its name."""
        (self.state_dir / "manual").write_text(f"{os.getpid()}\n")

    # --- manifest -----------------------------------------------------------------------------

    def _planned_hosts(self) -> list[LabHost]:
        return [self._manifest_host(spec) for spec in self._specs]

    def _manifest_host(self, spec: HostSpec) -> LabHost:
        services = [_manifest_service(DAEMONS[d], port, "tcp") for d, port in spec.services]
        udp = [
            _manifest_service(DAEMONS[d], port, "udp")
            for d, port in spec.services
            if DAEMONS[d].also_udp
        ]
        return LabHost(
            name=spec.name,
            namespace=self.namespace(spec.name),
            ipv4=f"{IPV4_PREFIX}{spec.octet}",
            ipv6=f"{IPV6_PREFIX}{spec.octet}" if spec.ipv6 else None,
            services=services,
            hostname=f"{spec.name}.{HOSTNAME_DOMAIN}",
            udp_services=udp,
        )

    # --- network ------------------------------------------------------------------------------

    def _build_network(self) -> None:
        scan = self.scanner_namespace
        _run(["ip", "netns", "add", scan])
        for cmd in (
            ["link", "set", "lo", "up"],
            [
                "link",
                "add",
                BRIDGE,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
                "mcast_snooping",
                "0",
            ],
            ["addr", "add", f"{SCANNER_IPV4}/24", "dev", BRIDGE],
            ["addr", "add", f"{SCANNER_IPV6}/64", "dev", BRIDGE, "nodad"],
            ["link", "set", BRIDGE, "up"],
        ):
            _run(["ip", "-n", scan, *cmd])
        self._write_scanner_etc()
        for host in self.hosts:
            self._add_host_network(host)

    def _write_scanner_etc(self) -> None:
        """/etc/hosts and /etc/resolv.conf as seen in the scanner namespace (`ip netns exec`
        bind-mounts /etc/netns/<ns>/*): lab hostnames resolve, and no DNS server outside the lab
        is configured. The scanner itself is the name server: nothing listens there, so a lookup
        fails at once instead of waiting for a timeout."""
        etc = _netns_etc(self.scanner_namespace)
        etc.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        banner = self._banner_manifest([])
        for h in [*self.hosts, banner]:
            short = h.name
            lines += [f"{a}\t{h.hostname} {short}" for a in h.addresses]
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        (etc / "resolv.conf").write_text(
            f"# flanlab: no name server beyond the lab\n"
            f"nameserver {SCANNER_IPV4}\noptions timeout:1 attempts:1\n"
        )

    def _add_host_network(self, host: LabHost) -> None:
        scan, ns = self.scanner_namespace, host.namespace
        veth = f"v-{host.name}"[:15]
        _run(["ip", "netns", "add", ns])
        # Router advertisements and autoconfiguration are off: only the addresses we set exist.
        _run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_ra=0",
                "net.ipv6.conf.default.accept_ra=0",
            ],
            check=False,
        )
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(
            [
                "ip",
                "-n",
                scan,
                "link",
                "add",
                veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            ]
        )
        _run(["ip", "-n", scan, "link", "set", veth, "master", BRIDGE, "up"])
        # A fixed, locally administered MAC per host: captured XML does not change between runs.
        octet = int(host.ipv4.rsplit(".", 1)[1])
        _run(["ip", "-n", ns, "link", "set", "eth0", "address", f"02:f1:a5:00:00:{octet:02x}"])
        _run(["ip", "-n", ns, "addr", "add", f"{host.ipv4}/24", "dev", "eth0"])
        if host.ipv6:
            _run(["ip", "-n", ns, "addr", "add", f"{host.ipv6}/64", "dev", "eth0", "nodad"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    # --- daemons ------------------------------------------------------------------------------

    def _context(self, host: LabHost, daemon: str, port: int) -> DaemonContext:
        workdir = self.state_dir / host.name / daemon
        workdir.mkdir(parents=True, exist_ok=True, mode=0o755)
        return DaemonContext(
            host=host.name,
            ipv4=host.ipv4,
            ipv6=host.ipv6,
            port=port,
            workdir=workdir,
            log=self.log_path(host.name, daemon),
        )

    def _start_all(self) -> None:
        contexts: list[tuple[LabHost, Daemon, DaemonContext]] = []
        for host in self.hosts:
            (self.state_dir / host.name).mkdir(mode=0o755, exist_ok=True)
            for daemon in host.daemons:
                port = host.sockets(daemon)[0][1]
                contexts.append((host, DAEMONS[daemon], self._context(host, daemon, port)))
        # Slow one-off steps (initdb) run in parallel with everything else.
        setup: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        for host, d, ctx in contexts:
            if d.prepare_once is not None:
                for launch in d.prepare_once(ctx):
                    setup.append(
                        (
                            f"{d.name} on {host.name} (setup)",
                            ctx.log,
                            self._spawn(host.namespace, launch, ctx, new_session=False),
                        )
                    )
        pending: list[tuple[LabHost, Daemon, DaemonContext]] = []
        for host, d, ctx in contexts:
            if d.prepare_once is None:
                self._launch(host, d, ctx)
            else:
                pending.append((host, d, ctx))
        for what, log, proc in setup:
            if proc.wait(timeout=120) != 0:
                raise LabError(
                    f"{what} failed with exit code {proc.returncode}; log {log}:\n{_tail(log)}"
                )
        for host, d, ctx in pending:
            self._launch(host, d, ctx)
        self._wait_listening([(h, d.name) for h, d, _ in contexts])

    def _spawn(
        self, ns: str, launch: Launch, ctx: DaemonContext, *, new_session: bool = True
    ) -> subprocess.Popen[bytes]:
        argv = ["ip", "netns", "exec", ns]
        if launch.user is not None:
            argv += _setpriv(launch.user, launch.group)
        argv += launch.argv
        with open(ctx.log, "ab") as log:
            if launch.user is not None:
                with contextlib.suppress(OSError):
                    shutil.chown(ctx.log, launch.user, launch.group)
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ctx.workdir,
                env=_DAEMON_ENV,
                start_new_session=new_session,
            )

    def _launch(self, host: LabHost, d: Daemon, ctx: DaemonContext) -> None:
        launch = d.prepare(ctx)
        proc = self._spawn(host.namespace, launch, ctx)
        self._procs[(host.name, d.name)] = proc
        (ctx.workdir / "lab.pid").write_text(f"{proc.pid}\n")

    def _missing_sockets(
        self, host: LabHost, daemon: str, listening: set[tuple[str, str, int]]
    ) -> list[str]:
        return [
            f"{a} {port}/{proto}"
            for proto, port in host.sockets(daemon)
            for a in host.addresses
            if (proto, a, port) not in listening
        ]

    def _wait_listening(self, items: list[tuple[LabHost, str]]) -> None:
        """Wait until every daemon listens on all its sockets on all its host's addresses."""
        deadline = time.monotonic() + READY_TIMEOUT
        waiting = list(items)
        while waiting:
            still: list[tuple[LabHost, str]] = []
            by_ns: dict[str, set[tuple[str, str, int]]] = {}
            for host, daemon in waiting:
                proc = self._procs.get((host.name, daemon))
                if proc is not None and proc.poll() is not None:
                    log = self.log_path(host.name, daemon)
                    raise LabError(
                        f"{daemon} on lab host {host.name} exited with code {proc.returncode} "
                        f"before listening; log {log}:\n{_tail(log)}"
                    )
                if host.namespace not in by_ns:
                    by_ns[host.namespace] = _listening(host.namespace)
                if self._missing_sockets(host, daemon, by_ns[host.namespace]):
                    still.append((host, daemon))
            waiting = still
            if not waiting:
                return
            if time.monotonic() > deadline:
                names = "; ".join(
                    f"{d} on {h.name} (missing "
                    f"{', '.join(self._missing_sockets(h, d, _listening(h.namespace)))}; "
                    f"log {self.log_path(h.name, d)})"
                    for h, d in waiting
                )
                raise LabError(f"not listening after {READY_TIMEOUT:.0f} s: {names}")
            time.sleep(0.05)

    def _wait_closed(self, host: LabHost, daemon: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        expected = len(host.sockets(daemon)) * len(host.addresses)
        while len(self._missing_sockets(host, daemon, _listening(host.namespace))) < expected:
            if time.monotonic() > deadline:
                raise LabError(f"{daemon} on lab host {host.name} still listens after stop")
            time.sleep(0.05)

    def _pid_of(self, host: str, daemon: str) -> int | None:
        """The running daemon's pid, from its pid file (another process may have started it)."""
        proc = self._procs.get((host, daemon))
        if proc is not None:
            proc.poll()  # reap it if it exited, so it does not linger as a zombie
        try:
            pid = int((self.state_dir / host / daemon / "lab.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def stop_service(self, host_name: str, daemon: str) -> None:
        """Stop one daemon (its stop signal, SIGKILL after 10 s) and wait until its ports close."""
        host = self.host(host_name)
        if daemon not in host.daemons:
            raise KeyError(f"host {host_name} runs no {daemon}")
        pid = self._pid_of(host_name, daemon)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, DAEMONS[daemon].stop_signal if daemon in DAEMONS else signal.SIGTERM)
            deadline = time.monotonic() + 10
            proc = self._procs.get((host_name, daemon))
            while _pid_alive(pid) and time.monotonic() < deadline:
                if proc is not None:
                    proc.poll()
                time.sleep(0.02)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            if proc is not None:
                proc.wait(timeout=5)
        self._procs.pop((host_name, daemon), None)
        self._wait_closed(host, daemon)

    def start_service(self, host_name: str, daemon: str) -> None:
        """Start a stopped daemon again and wait until it listens (no-op if it runs)."""
        host = self.host(host_name)
        if daemon not in host.daemons:
            raise KeyError(f"host {host_name} runs no {daemon}")
        if self._pid_of(host_name, daemon) is not None:
            return
        if daemon == BANNER_DAEMON:
            raise LabError("use set_banner_host() to (re)start the banner server")
        ctx = self._context(host, daemon, host.sockets(daemon)[0][1])
        self._launch(host, DAEMONS[daemon], ctx)
        self._wait_listening([(host, daemon)])

    @contextlib.contextmanager
    def service_stopped(self, host_name: str, daemon: str) -> Iterator[None]:
        """``with lab.service_stopped("db", "redis"):`` the service is down inside the block."""
        self.stop_service(host_name, daemon)
        try:
            yield
        finally:
            self.start_service(host_name, daemon)

    # --- banner host --------------------------------------------------------------------------

    def set_banner_host(self, banner: str | bytes, port: int = 2222) -> LabHost:
        """Start (or restart) the banner host's server, sending ``banner`` on ``port``.

        The banner host (198.18.0.20, fd00:f1a5::20) is created on first use; it is not in
        :attr:`hosts` or :attr:`targets`. Returns it, with one service of daemon ``"banner"``.
        """
        if not self._is_up:
            raise LabError("bring the lab up before setting the banner host")
        if self.banner_host is None:
            host = self._banner_manifest([])
            self._add_host_network(host)
            # The banner server runs as nobody but may imitate services on ports below 1024.
            _run(
                [
                    "ip",
                    "netns",
                    "exec",
                    host.namespace,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_unprivileged_port_start=0",
                ]
            )
            self.banner_host = host
        self.clear_banner_host()
        data = banner.encode("latin-1") if isinstance(banner, str) else banner
        host = self._banner_manifest([LabService(port, "tcp", BANNER_DAEMON, None, None, None)])
        self.banner_host = host
        ctx = self._context(host, BANNER_DAEMON, port)
        (ctx.workdir / "banner").write_bytes(data)
        server = Path(__file__).with_name("banner_server.py")
        launch = Launch(
            [
                sys.executable,
                str(server),
                "--port",
                str(port),
                "--banner-file",
                str(ctx.workdir / "banner"),
                *host.addresses,
            ],
            user="nobody",
            group="nogroup",
        )
        proc = self._spawn(host.namespace, launch, ctx)
        self._procs[(host.name, BANNER_DAEMON)] = proc
        (ctx.workdir / "lab.pid").write_text(f"{proc.pid}\n")
        self._wait_listening([(host, BANNER_DAEMON)])
        self._write_state()
        return host

    def clear_banner_host(self) -> None:
        """Stop the banner server (the banner host stays up, with nothing open)."""
        host = self.banner_host
        if host is None or not host.services:
            return
        self.stop_service(host.name, BANNER_DAEMON)
        self.banner_host = self._banner_manifest([])
        self._write_state()

    def _banner_manifest(self, services: list[LabService]) -> LabHost:
        spec = BANNER_SPEC
        return LabHost(
            name=spec.name,
            namespace=self.namespace(spec.name),
            ipv4=f"{IPV4_PREFIX}{spec.octet}",
            ipv6=f"{IPV6_PREFIX}{spec.octet}",
            services=services,
            hostname=f"{spec.name}.{HOSTNAME_DOMAIN}",
        )

    # --- state file (for `python -m testlab status` and other processes) ---------------------

    def _write_state(self) -> None:
        hosts = [*self.hosts, *([self.banner_host] if self.banner_host else [])]
        data = {
            "name": self.name,
            "scanner_namespace": self.scanner_namespace,
            "owner_pid": os.getpid(),
            "up": self._is_up,
            "hosts": [
                {
                    "name": h.name,
                    "namespace": h.namespace,
                    "ipv4": h.ipv4,
                    "ipv6": h.ipv6,
                    "hostname": h.hostname,
                    "services": [dataclasses.asdict(s) for s in h.services],
                    "udp_services": [dataclasses.asdict(s) for s in h.udp_services],
                }
                for h in hosts
            ],
        }
        tmp = self.state_dir / "lab.json.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_dir / "lab.json")

    @classmethod
    def attach(cls, name: str = DEFAULT_NAME, *, state_root: Path = STATE_ROOT) -> Lab:
        """A handle on a lab that another process brought up (reads its state file)."""
        path = state_root / name / "lab.json"
        try:
            data = json.loads(path.read_text())
        except OSError as e:
            raise LabError(f"no lab named {name} is up ({path} is missing)") from e
        lab = cls(name, state_root=state_root)
        hosts = [
            LabHost(
                h["name"],
                h["namespace"],
                h["ipv4"],
                h["ipv6"],
                [LabService(**s) for s in h["services"]],
                h.get("hostname"),
                [LabService(**s) for s in h.get("udp_services", [])],
            )
            for h in data["hosts"]
        ]
        lab.hosts = [h for h in hosts if h.name != BANNER_SPEC.name]
        lab.banner_host = next((h for h in hosts if h.name == BANNER_SPEC.name), None)
        lab._is_up = bool(data.get("up"))
        return lab


def _setpriv(user: str, group: str | None = None) -> list[str]:
    if group is None:
        group = "nogroup" if user == "nobody" else user
    return (
        ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups"]
        if user != "nobody"
        else ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups"]
    )


def _manifest_service(d: Daemon, port: int, protocol: str) -> LabService:
    version = package_version(d.debian_package)
    if protocol == "udp":
        # Nmap does not identify the lab's UDP service (see LabHost): nothing to expect from it.
        return LabService(
            port=port,
            protocol=protocol,
            daemon=d.name,
            debian_package=d.debian_package,
            nmap_product=None,
            package_version=version,
            upstream_version=upstream_version(version),
        )
    return LabService(
        port=port,
        protocol=protocol,
        daemon=d.name,
        debian_package=d.debian_package,
        nmap_product=d.nmap_product,
        package_version=version,
        nmap_service=d.nmap_service,
        nmap_version=d.nmap_version(version),
        upstream_version=upstream_version(version),
        nmap_cpe=nmap_cpe(d, version),
    )
