"""Benchmark: `flan scan` over many loopback hosts against Flan's one-process Nmap command.

The loopback trick: inside a network namespace this script creates, daemons bound to 0.0.0.0
answer on every 127.x address, so N hosts cost one set of daemons. The scanner runs inside the
same namespace (its only interface is `lo`), so no packet leaves it; only 127.x addresses are
ever scanned. Daemons (prepared as the test lab does, testlab._daemons): OpenSSH on 22, nginx
on 80, Python's http.server on 8000 (the three in Nmap's top 1000 ports), Redis on 6379 and
memcached on 11211 (found by `--ports all` only).

Prints, in one run on the same hosts, with the load average beside every figure:
- the original: `nmap -sS -sV -oX FILE -iL TARGETS` in one process (Flan's command, no
  vulners script: it cannot reach its API offline, and leaving it out favours the original);
- `flan scan` (default profile), its ratio to the original (target <= 0.12), the services each
  found and whether they are the same, and the peak memory of flan's whole process tree;
- with --profile all: `flan scan --ports all`, its ratio to the default profile's time
  (target <= 1.5), the services found and the tree's peak memory (target <= 1 GB).
Peak tree memory: RSS summed over every process of a memory cgroup holding the run, sampled
every 0.1 s, and the cgroup's own peak (memory.max_usage_in_bytes, which counts page cache too).
CPU: user + system seconds of the whole process tree (every process is waited for by its
parent, so getrusage(RUSAGE_CHILDREN) counts them all).
`--load N` runs N busy-loop CPU hogs (outside the namespace, at normal priority) for the whole
run of both scanners, so that a loaded machine can be reproduced. The target daemons share
those cores; `--targets-nice -10` runs them ahead of the hogs, as targets on other machines
would not be slowed by the scanner machine's load.
With --profile discovery: the full-port discovery pass alone (no -sV) in the variants named by
--variant (Nmap with other retries, rates, host groups, process counts, niceness; masscan at a
rate), each with its time, the open ports it found of the hosts x 5 expected, its probes per
second, its CPU per probe and the tree's peak memory: how near the packet floor each gets.
Each flan run gets a history file of its own in the benchmark's temporary directory.

Usage (root): .venv/bin/python bench/bench_scan_ns.py [--hosts 256]
              [--profile default|all|both|discovery] [--variant SPEC]... [--skip-original]
              [--workers N] [--load N] [--targets-nice N] [-- extra flags for flan scan's Nmap]
A variant SPEC: `nmap[:procs=2,retries=R,min-rate=N,hostgroup=N,maxgroup=N,nice=N]` (flan's
full pass
by default: 2 processes, -T4 --min-rate 1000 --max-scan-delay 0, all 65,535 ports;
hostgroup/maxgroup are --min-hostgroup/--max-hostgroup) or `masscan[:rate=N]`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Reading what each scanner found is the 8-host lab bench's (bench_scan.py, same folder).
from bench_scan import Service, services_in_report, services_in_xml  # noqa: E402

from testlab._daemons import DAEMONS, DaemonContext, Launch  # noqa: E402

FIRST = ipaddress.IPv4Address("127.0.1.0")
TOP1000_PORTS = (22, 80, 8000)
ALL_PORTS = (*TOP1000_PORTS, 6379, 11211)
HTTP_SERVER = (
    "import http.server as h; h.ThreadingHTTPServer.request_queue_size = 4096; "
    "h.test(h.SimpleHTTPRequestHandler, h.ThreadingHTTPServer, port=8000, bind='0.0.0.0')"
)
CGROUP_ROOT = Path("/sys/fs/cgroup/memory")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C"}


def _one_per_host(name: str, launch: Launch, work: Path) -> Launch:
    """One daemon stands for N hosts: lift its limits on concurrent clients so that they are
    those of N daemons (sshd drops unauthenticated connections past MaxStartups 10)."""
    if name == "sshd":
        with open(work / "sshd_config", "a") as sshd_conf:
            sshd_conf.write("MaxStartups 10000\nPerSourceMaxStartups none\n")
    elif name == "nginx":
        conf = work / "nginx.conf"
        conf.write_text(
            conf.read_text().replace("worker_connections 256", "worker_connections 8192")
        )
    elif name == "memcached":
        argv = list(launch.argv)
        argv[argv.index("-c") + 1] = "8192"
        return Launch(argv, launch.user, launch.group)
    return launch


DEFAULT_VARIANTS = ("nmap", "nmap:retries=1", "nmap:retries=0", "masscan:rate=100000")
# masscan sends Ethernet frames on `lo` to one next-hop MAC and reads replies with libpcap: in
# the benchmark's own namespace `lo` gets a MAC and accepts injected frames from 127.x
# (route_localnet, accept_local); nothing of the kind is done outside it.
LO_MAC = "02:00:00:00:00:01"


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def _targets(count: int) -> list[str]:
    addrs = [str(FIRST + i) for i in range(count)]
    loopback = ipaddress.ip_network("127.0.0.0/8")
    if not all(ipaddress.ip_address(a) in loopback for a in addrs):
        raise SystemExit("refusing: a target would fall outside 127.0.0.0/8")
    return addrs


class Namespace:
    """A network namespace with only `lo`, and the benchmark's daemons listening on 0.0.0.0."""

    def __init__(self, state: Path) -> None:
        self.name = f"flanbench-{os.getpid()}"
        self.state = state
        self.procs: list[subprocess.Popen[bytes]] = []
        self.etc = Path("/etc/netns") / self.name  # bind-mounted over /etc by `ip netns exec`

    def argv(self, argv: list[str], user: str | None = None, group: str | None = None) -> list[str]:
        prefix = ["ip", "netns", "exec", self.name]
        if user:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={group or user}", "--init-groups"]
        return prefix + argv

    def up(self) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        # A name server in the namespace that answers every query at once with NXDOMAIN, as a
        # near resolver answers: without one, Nmap's reverse DNS waits 13 s per process.
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text(
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
        )
        for name, port in (("sshd", 22), ("nginx", 80), ("redis", 6379), ("memcached", 11211)):
            work = self.state / name
            work.mkdir(mode=0o755)
            ctx = DaemonContext("bench", "0.0.0.0", None, port, work, work / "log")
            launch = DAEMONS[name].prepare(ctx)
            self._spawn(_one_per_host(name, launch, work), work)
        web = self.state / "http.server"
        web.mkdir(mode=0o755)
        (web / "index.html").write_text("<!doctype html><title>bench</title>\n")
        # http.server's listen backlog is 5: raised as for the other daemons (one for N hosts).
        python = Launch(["/usr/bin/python3", "-c", HTTP_SERVER])
        self._spawn(python, web)
        self._spawn(Launch(["/usr/bin/python3", str(Path(__file__).with_name("nxdomain.py"))]), web)
        deadline = time.monotonic() + 30
        while (missing := set(ALL_PORTS) - self._listening()) and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting for a condition: the sockets listening
        if missing:
            raise SystemExit(
                f"daemons not listening on ports {sorted(missing)}; logs in {self.state}"
            )

    def _spawn(self, launch: Launch, work: Path) -> None:
        with open(work / "log", "ab") as log:
            if launch.user:
                shutil.chown(work / "log", launch.user, launch.group)
            argv = self.argv(launch.argv, launch.user, launch.group)
            self.procs.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=work,
                    env=ENV,
                )
            )

    def _listening(self) -> set[int]:
        out = subprocess.run(self.argv(["ss", "-Hltn"]), capture_output=True, text=True).stdout
        return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines()}

    def down(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["ip", "netns", "del", self.name], check=False)
        shutil.rmtree(self.etc, ignore_errors=True)


class TreeMemory:
    """Peak memory of every process in a memory cgroup made for one run."""

    def __init__(self, label: str) -> None:
        self.path = CGROUP_ROOT / f"flanbench-{os.getpid()}-{label}"
        self.path.mkdir()
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def enter(self) -> None:
        """Run in the child before exec: join the cgroup (children inherit it)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(0.1):
            total = 0
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            self.peak_rss = max(self.peak_rss, total)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()

    def cgroup_peak(self) -> int:
        return int((self.path / "memory.max_usage_in_bytes").read_text())

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


@dataclasses.dataclass(frozen=True)
class Timing:
    seconds: float
    cpu: float  # user + system seconds of the whole process tree
    rss: int  # peak of the RSS summed over the tree
    cgroup: int  # the memory cgroup's own peak


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(ns: Namespace, argv: list[str], label: str) -> Timing:
    """Wall and CPU seconds, peak tree RSS and cgroup peak of `argv` run in the namespace."""
    mem = TreeMemory(label)
    try:
        cpu0, t0 = _children_cpu(), time.monotonic()
        with mem.running():
            r = subprocess.run(ns.argv(argv), preexec_fn=mem.enter, capture_output=True,
                               text=True, timeout=7200)  # fmt: skip
        seconds = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit(f"{label} failed ({r.returncode}): {r.stderr[-2000:]}")
        return Timing(seconds, _children_cpu() - cpu0, mem.peak_rss, mem.cgroup_peak())
    finally:
        mem.remove()


HOG = "while True: pass"


@contextlib.contextmanager
def _cpu_hogs(count: int) -> Iterator[None]:
    """`count` busy loops for as long as the block runs (a loaded machine, reproducibly)."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to run the full-port discovery pass (see the module docstring's SPEC)."""

    spec: str
    tool: str
    settings: dict[str, int]

    @classmethod
    def parse(cls, spec: str) -> Variant:
        tool, _, rest = spec.partition(":")
        known = {
            "nmap": ("procs", "retries", "min-rate", "hostgroup", "maxgroup", "nice"),
            "masscan": ("rate",),
        }
        if tool not in known:
            raise SystemExit(f"--variant {spec!r}: the tool is nmap or masscan")
        settings: dict[str, int] = {}
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            if key not in known[tool] or not value.isdigit():
                raise SystemExit(
                    f"--variant {spec!r}: {item!r}: give {', '.join(known[tool])} as key=NUMBER"
                )
            settings[key] = int(value)
        return cls(spec, tool, settings)

    def commands(self, work: Path, targets: list[str], out: Path) -> list[list[str]]:
        """The processes to run at once; each writes its output under `out`."""
        if self.tool == "masscan":
            (out / "targets.txt").write_text("".join(f"{t}\n" for t in targets))
            return [[
                "masscan", "-iL", str(out / "targets.txt"), "-p", "1-65535",
                "--rate", str(self.settings.get("rate", 100000)), "--adapter", "lo",
                "--adapter-ip", "127.0.0.1", "--router-mac", LO_MAC, "--wait", "2",
                "-oL", str(out / "masscan.txt"),
            ]]  # fmt: skip
        procs = self.settings.get("procs", 2)
        argvs = []
        for i in range(procs):
            share = out / f"targets-{i}.txt"
            share.write_text("".join(f"{t}\n" for t in targets[i::procs]))
            nice = ["nice", "-n", str(self.settings["nice"])] if "nice" in self.settings else []
            argv = [*nice, "nmap", "-sS", "-p", "1-65535", "-T4", "-n", "--max-scan-delay", "0",
                    "--min-rate", str(self.settings.get("min-rate", 1000))]  # fmt: skip
            if "retries" in self.settings:
                argv += ["--max-retries", str(self.settings["retries"])]
            if "hostgroup" in self.settings:
                argv += ["--min-hostgroup", str(self.settings["hostgroup"])]
            if "maxgroup" in self.settings:
                argv += ["--max-hostgroup", str(self.settings["maxgroup"])]
            argvs.append([*argv, "-oX", str(out / f"nmap-{i}.xml"), "-iL", str(share)])
        return argvs

    def open_ports(self, out: Path) -> set[Service]:
        found: set[Service] = set()
        if self.tool == "masscan":
            for line in (out / "masscan.txt").read_text().splitlines():
                words = line.split()
                if len(words) == 5 and words[0] == "open" and words[1] == "tcp":
                    found.add((words[3], int(words[2])))
            return found
        for xml in out.glob("nmap-*.xml"):
            for host in ET.parse(xml).getroot().iter("host"):
                addr = next(a.get("addr", "") for a in host.iter("address"))
                for port in host.iter("port"):
                    state = port.find("state")
                    if state is not None and state.get("state") == "open":
                        found.add((addr, int(port.get("portid", "0"))))
        return found


def _masscan_ready(ns: Namespace) -> None:
    for argv in (
        ["ip", "-n", ns.name, "link", "set", "lo", "address", LO_MAC],
        ns.argv(["sysctl", "-q", "-w", "net.ipv4.conf.lo.route_localnet=1",
                 "net.ipv4.conf.lo.accept_local=1", "net.ipv4.conf.all.accept_local=1"]),
    ):  # fmt: skip
        subprocess.run(argv, check=True)


@contextlib.contextmanager
def _lo_wakeups(ns: Namespace) -> Iterator[None]:
    """masscan 1.3.2 with Debian 12's libpcap 1.10 waits in libpcap until a frame arrives, so
    it never exits on a quiet `lo`: a connection attempt to a closed port every 0.5 s ends
    that wait (one SYN and one RST on lo, nothing else)."""
    poke = (
        "import socket, time\n"
        "while True:\n"
        "    try: socket.create_connection(('127.0.0.1', 1), timeout=0.2)\n"
        "    except OSError: pass\n"
        "    time.sleep(0.5)\n"
    )
    proc = subprocess.Popen(ns.argv([sys.executable, "-c", poke]), env=ENV)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def run_discovery(ns: Namespace, work: Path, targets: list[str], spec: str) -> None:
    """Time one discovery variant and print what it found."""
    variant = Variant.parse(spec)
    out = work / f"discovery-{len(list(work.glob('discovery-*')))}"
    out.mkdir()
    argvs = variant.commands(work, targets, out)
    script = " & ".join(shlex.join(a) for a in argvs) + " & wait"
    wake = _lo_wakeups(ns) if variant.tool == "masscan" else contextlib.nullcontext()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with wake:
        t = _timed(ns, ["sh", "-c", script], f"discovery-{out.name}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, rss = t.seconds, t.rss
    found = variant.open_ports(out)
    probes = len(targets) * 65535
    # CPU per probe of the scanner's processes: user = the tool's own work, system = mostly the
    # kernel's (loopback delivery runs in the sender's context: the SYN, the RST or SYN-ACK it
    # makes, the capture of the reply). 2 cores / system µs per probe bounds any tool's rate.
    user = (after.ru_utime - before.ru_utime) / probes * 1e6
    system = (after.ru_stime - before.ru_stime) / probes * 1e6
    print(f"discovery {spec:32s} {seconds:7.1f} s  open ports "
          f"{_count(dict.fromkeys(found, ''), targets, ALL_PORTS)}  "
          f"{probes / seconds / 1000:6.1f} k probes/s  CPU/probe user {user:4.1f} µs "
          f"system {system:4.1f} µs  tree RSS {_mb(rss)}  [{_load()}]", flush=True)  # fmt: skip


def _count(found: dict[Service, str], targets: list[str], ports: tuple[int, ...]) -> str:
    hit = sum(1 for a in targets for p in ports if (a, p) in found)
    return f"{hit}/{len(targets) * len(ports)}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=256, help="loopback hosts from 127.0.1.0")
    parser.add_argument("--profile", choices=("default", "all", "both", "discovery"),
                        default="default")  # fmt: skip
    parser.add_argument(
        "--variant",
        action="append",
        metavar="SPEC",
        help=f"with --profile discovery (default: {' '.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument("--skip-original", action="store_true", help="time flan only")
    parser.add_argument("--workers", type=int, help="flan scan --workers")
    parser.add_argument("--targets-nice", type=int, default=0, metavar="N",
                        help="niceness of the target daemons (-10: they stand for other "
                             "machines, which the scanner's load does not slow)")  # fmt: skip
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="run N busy-loop CPU hogs during both scanners' runs")  # fmt: skip
    parser.add_argument("nmap_flags", nargs="*", help="after --: flags for flan scan's Nmap")
    args = parser.parse_args()
    if not 1 <= args.hosts <= 65536:
        parser.error("--hosts: 1 to 65536")
    if not 0 <= args.load <= 64:
        parser.error("--load: 0 to 64 CPU hogs")
    targets = _targets(args.hosts)
    specs = args.variant or list(DEFAULT_VARIANTS)
    for spec in specs:
        Variant.parse(spec)  # a bad spec stops before anything runs
    if args.profile == "discovery" and any(spec.startswith("masscan") for spec in specs):
        if shutil.which("masscan", path=ENV["PATH"]) is None:
            raise SystemExit(
                "masscan variants need masscan (Debian package masscan; "
                "scripts/setup --test installs it)"
            )
    # Killed: still take the namespace and its daemons down (finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    with tempfile.TemporaryDirectory(prefix="bench-scan-ns-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        (work / "targets.txt").write_text("".join(f"{t}\n" for t in targets))
        ns = Namespace(work / "daemons")
        (work / "daemons").mkdir(mode=0o755)
        ns.up()
        for proc in ns.procs:  # their children (sshd's per connection) inherit it
            os.setpriority(os.PRIO_PROCESS, proc.pid, args.targets_nice)
        try:
            print(f"{args.hosts} hosts {targets[0]}..{targets[-1]} in namespace {ns.name}; "
                  f"{os.cpu_count()} cores, {args.load} CPU hogs, {_load()}")  # fmt: skip
            if args.profile == "discovery":
                if any(spec.startswith("masscan") for spec in specs):
                    _masscan_ready(ns)
                with _cpu_hogs(args.load):
                    for spec in specs:
                        run_discovery(ns, work, targets, spec)
            else:
                _compare(args, ns, work, targets)
        finally:
            ns.down()
    return 0


def _compare(args: argparse.Namespace, ns: Namespace, work: Path, targets: list[str]) -> None:
    with _cpu_hogs(args.load):
        orig: tuple[float, dict[Service, str]] | None = None
        if not args.skip_original:
            out = work / "original.xml"
            argv = ["nmap", "-sS", "-sV", "-oX", str(out), "-iL", str(work / "targets.txt")]
            t = _timed(ns, argv, "original")
            orig = (t.seconds, services_in_xml(out.read_text()))
            print(f"original (nmap -sS -sV, one process): {t.seconds:7.1f} s  CPU "
                  f"{t.cpu:.1f} s  services {_count(orig[1], targets, TOP1000_PORTS)}  "
                  f"tree RSS {_mb(t.rss)}  [{_load()}]")  # fmt: skip
        default_s: float | None = None
        profiles = ("default", "all") if args.profile == "both" else (args.profile,)
        for profile in profiles:
            run = work / f"flan-{profile}"
            # A history of its own: the user's default one may belong to another flan version.
            argv = [sys.executable, "-m", "flanscan", "scan", "--no-db", "--quiet",
                    "--format", "json", "--output-dir", str(run),
                    "--history", str(work / f"history-{profile}.sqlite3"),
                    "-iL", str(work / "targets.txt")]  # fmt: skip
            if profile == "all":
                argv += ["--ports", "all"]
            if args.workers:
                argv += ["--workers", str(args.workers)]
            if args.nmap_flags:
                argv += ["--", *args.nmap_flags]
            t = _timed(ns, argv, profile)
            seconds = t.seconds
            found = services_in_report(run / "report.json")
            ports = TOP1000_PORTS if profile == "default" else ALL_PORTS
            meta = json.loads((run / "run.json").read_text())
            print(f"flan scan{' --ports all' if profile == 'all' else ''}: {seconds:7.1f} s  "
                  f"CPU {t.cpu:.1f} s  services {_count(found, targets, ports)}  tree RSS "
                  f"{_mb(t.rss)} (cgroup peak {_mb(t.cgroup)}, target 1000 MB: "
                  f"{'met' if t.rss <= 1e9 else 'NOT met'})  workers {meta.get('workers_max')}"
                  f"  [{_load()}]")  # fmt: skip
            print(f"  first Nmap command: {meta['workers'][0]['command']}")
            if profile == "default":
                default_s = seconds
                if orig is not None:
                    ratio = seconds / orig[0]
                    same = {k: v for k, v in found.items() if k[1] in TOP1000_PORTS} == orig[1]
                    print(f"  flan / original = {ratio:.3f} (target <= 0.12: "
                          f"{'met' if ratio <= 0.12 else 'NOT met'}); same services as the "
                          f"original: {'yes' if same else 'NO'}")  # fmt: skip
            elif default_s is not None:
                ratio = seconds / default_s
                print(f"  --ports all / default = {ratio:.2f} (target <= 1.5: "
                      f"{'met' if ratio <= 1.5 else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
