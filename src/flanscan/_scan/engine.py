"""Run a scan: split targets over concurrent Nmap processes, keep every XML, record the run.

Two profiles:
- "top1000" (the original Flan Scan's scan): ping discovery, SYN scan of Nmap's top 1000 TCP
  ports and service detection (-sV), in `workers` processes over shares of the targets.
- "all": a fast SYN scan of all 65535 TCP ports (no -sV) in `workers` processes; each open
  port is handed, as soon as Nmap reports it, to a service-detection (-sV) process, so that
  services are probed in parallel while discovery goes on.
"""

from __future__ import annotations

import math
import os
import queue
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from flanscan import __version__
from flanscan._errors import EnvironmentProblem, UsageError
from flanscan._nmapopts import PortListError, mask_argv, mask_command, parse_port_list
from flanscan._records import (
    RUN_FILE,
    HostCounts,
    ReportInputs,
    RunRecord,
    RunStatus,
    WorkerPhase,
    WorkerState,
    write_record,
)
from flanscan._safefile import check_dir_target, write_atomic
from flanscan._scan import nmapout, tuning
from flanscan._scan.jobs import (
    Job,
    ScanResult,
    WorkerStatus,
    drop_empty_xml,
    failure_warnings,
    host_counts,
    incomplete_targets,
    running,
)
from flanscan._scan.nmapargs import PassThrough
from flanscan._scan.privilege import NmapChoice, choose_nmap
from flanscan._scan.process import LineQueue, NmapProcess, nmap_version
from flanscan._scan.progress import NullProgress, ProgressSink, ScanProgress, progress_snapshot
from flanscan._scan.stopping import StopRequest, stop_signals
from flanscan._targets import (
    DEFAULT_MAX_HOSTS,
    TargetChunk,
    TargetSet,
    TargetSpec,
    check_scope,
    split_targets,
)

PORTS_CHOICES = ("top1000", "all")

# Nmap's own progress lines every so often (parsed for the live display).
STATS_EVERY = "2s"
# Floor rate for the all-ports discovery: without it a filtered host takes minutes per 65535.
DISCOVERY_MIN_RATE = 1000
# --max-scan-delay 0 on the full pass: Nmap raises a host's send delay when replies go missing
# and keeps it; on a loaded machine, drops early in the pass (the quick pass and service probes
# running beside it) held one process's 56 hosts at 5 ms per probe for the rest of their 65,535
# ports (Nmap's ETA 10-20 min against 4 for its twin). Congestion control still applies.
# Service detection: how long an open port may wait to be batched with others, and how many
# ports one -sV process takes at least (when that many are waiting).
RELEASE_AFTER = 1.0
# The full discovery pass starts when the known-ports pass ends, or after this many seconds.
FULL_PASS_DELAY = 2.0
MIN_SERVICE_BATCH = 16
# Above this many targets a worker reads them from a file instead of the command line.
INLINE_TARGETS = 16

PROFILE_TEXT = {
    "top1000": "ping discovery, {scan} scan of Nmap's top 1000 TCP ports, service detection (-sV)",
    "all": "ping discovery, {scan} scan of all 65535 TCP ports, then service detection (-sV) "
    "on the open ports",
}
# --ports with an Nmap port list.
PORT_LIST_TEXT = "ping discovery, {scan} scan of ports {ports}, service detection (-sV)"


@dataclass(frozen=True)
class ScanOptions:
    """What to scan and how. `output_dir` is the run's directory (created if missing)."""

    targets: tuple[TargetSpec, ...]
    output_dir: Path
    excludes: tuple[TargetSpec, ...] = ()
    ports: str = "top1000"  # "top1000" | "all" | an Nmap port list ("22,80,8000-8100")
    workers: int | None = None  # None: chosen from the number of hosts and CPU cores
    extra_args: tuple[str, ...] = ()  # Nmap flags passed through after `--`
    vulners: bool = False  # add the (online-only) vulners NSE script
    max_hosts: int = DEFAULT_MAX_HOSTS  # a larger scope is refused before scanning
    report_inputs: ReportInputs | None = None  # recorded in run.json for `flan report`


def _now() -> datetime:
    return datetime.now(UTC)


def default_workers(hosts: int | None = None, cores: int | None = None) -> int:
    """Nmap processes to run at once: Nmap mostly waits on the network, so a few per core;
    never more port-scanning processes than hosts (`hosts=None` for service detection)."""
    cores = cores or os.cpu_count() or 1
    per_cores = max(4, min(32, 4 * cores))
    return max(1, per_cores if hosts is None else min(hosts, per_cores))


def default_run_dir(base: Path = Path("flan-results"), now: datetime | None = None) -> Path:
    """`base/<UTC timestamp>/`, made unique when a run of the same second exists."""
    stamp = (now or _now()).strftime("%Y-%m-%dT%H%M%SZ")
    candidate = base / stamp
    n = 2
    while candidate.exists():
        candidate = base / f"{stamp}-{n}"
        n += 1
    return candidate


def _wants_raw(extra: PassThrough) -> bool:
    """Whether Nmap would try raw packets: as root, or told it may (as the image does)."""
    return os.geteuid() == 0 or extra.has("--privileged") or bool(os.environ.get("NMAP_PRIVILEGED"))


# --------------------------------------------------------------------------- planning


class _Plan:
    """Turns options into Nmap command lines; knows the profile's flags."""

    def __init__(
        self, options: ScanOptions, targets: TargetSet, run_dir: Path, extra: PassThrough,
        nmap: NmapChoice,
    ) -> None:  # fmt: skip
        self.options = options
        self.run_dir = run_dir
        self.extra = extra
        self.targets = targets
        self.notes: list[str] = []
        self.nmap = nmap
        self.privileged = _wants_raw(self.extra) and nmap.raw
        user_type = self.extra.tcp_scan_type
        if nmap.note is not None:
            self.notes.append(nmap.note)
        elif user_type is None and not self.privileged:
            self.notes.append(
                "not running as root: Nmap cannot send raw packets, so flan uses a TCP connect "
                "scan (-sT) instead of a SYN scan; run as root for the original profile"
            )
        self.tcp_flag = user_type or ("-sS" if self.privileged else "-sT")
        self.scan_word = {"-sS": "SYN", "-sT": "TCP connect"}.get(self.tcp_flag, self.tcp_flag)
        self._check_families()
        self.port_expr = self._check_ports()

    def _check_families(self) -> None:
        if self.extra.ipv6 and self.targets.v4.count:
            raise UsageError(
                f"Nmap flag -6 scans IPv6 only, but IPv4 target(s) were given (first: "
                f"{self.targets.v4.at(0)}); scan them in a separate run"
            )

    def _check_ports(self) -> str | None:
        """For --ports all: Nmap's -p value (all TCP ports plus the user's UDP/SCTP ports)."""
        if self.options.ports != "all":
            return None
        if self.extra.has("--top-ports", "--port-ratio", "-F"):
            raise UsageError(
                "--ports all scans every TCP port: remove --top-ports/-F from the Nmap flags"
            )
        spec = self.extra.value("-p")
        others = []
        if spec is not None:
            proto = None
            for part in spec.split(","):
                if part[:2].upper() in ("T:", "U:", "S:", "P:"):
                    proto = part[0].upper()
                if proto in (None, "T"):
                    raise UsageError(
                        f"--ports all scans every TCP port: the Nmap flag -p {spec} names TCP "
                        "ports; keep only U:/S: ports (e.g. -p U:161) or drop --ports all"
                    )
                others.append(part)
        if self.extra.udp and not any(p.upper().startswith("U:") for p in others):
            raise UsageError(
                "--ports all with -sU: say which UDP ports to scan, e.g. `-- -sU -p U:53,161`"
            )
        return ",".join(["T:1-65535", *others])

    @property
    def ports_label(self) -> str:
        if self.options.ports == "all":
            return self.port_expr.replace("T:1-65535", "1-65535") if self.port_expr else "1-65535"
        return self.extra.port_spec or "top-1000"

    @property
    def description(self) -> str:
        profile = PROFILE_TEXT.get(self.options.ports, PORT_LIST_TEXT)
        text = profile.format(scan=self.scan_word, ports=self.options.ports)
        if self.options.vulners:
            text += ", vulners NSE script"
        if self.extra.words:
            text += f"; extra Nmap flags: {shlex.join(mask_argv(self.extra.words))}"
        return text

    def _target_args(self, name: str, chunk_targets: Sequence[str]) -> list[str]:
        if len(chunk_targets) <= INLINE_TARGETS:
            return list(chunk_targets)
        path = Path("targets") / f"{name}.txt"
        write_atomic(self.run_dir / path, "".join(f"{t}\n" for t in chunk_targets))
        return ["-iL", str(path)]

    def _tail(self, name: str) -> list[str]:
        return ["-v", "--stats-every", STATS_EVERY, "-oX", str(Path("xml") / f"{name}.xml")]

    def _excludes(self) -> list[str]:
        return ["--excludefile", "targets/exclude.txt"] if self.options.excludes else []

    def scan_job(self, name: str, chunk: TargetChunk, parallelism: int | None = None) -> list[str]:
        """One worker of the top1000 profile (`parallelism`: Nmap's --min-parallelism)."""
        argv = ["nmap"]
        if not self.extra.has("-sU", "-sY", "-sZ", "-sO", "-sn") and not self.extra.tcp_scan_type:
            argv.append(self.tcp_flag)
        argv.append("-sV")
        if parallelism is not None:
            argv += ["--min-parallelism", str(parallelism)]
        if chunk.family == 6 and not self.extra.ipv6:
            argv.append("-6")
        argv += self.extra.words
        if self.options.vulners:
            argv += ["--script", "vulners"]
        argv += self._tail(name) + self._excludes()
        return argv + self._target_args(name, chunk.targets)

    def discovery_job(self, name: str, chunk: TargetChunk) -> list[str]:
        """One port-discovery worker of the all-ports profile (no -sV)."""
        argv = ["nmap"]
        if not self.extra.tcp_scan_type:
            argv.append(self.tcp_flag)
        assert self.port_expr is not None
        argv += ["-p", self.port_expr, "-T4", "--min-rate", str(DISCOVERY_MIN_RATE)]
        argv += self._host_group()
        if not self.extra.has(*tuning.USER_TIMING_FLAGS):
            argv += ["--max-scan-delay", "0"]  # why: above DISCOVERY_MIN_RATE
        # The known-ports pass covers the ports in nmap-services ("[-]" in Nmap's syntax).
        excluded = self.extra.value("--exclude-ports")
        argv += ["--exclude-ports", "T:[-]" + (f",{excluded}" if excluded else "")]
        # Reverse DNS of every target before the port scan costs seconds to minutes where no
        # resolver answers; names can be asked for with -- -R.
        if not self.extra.resolves_names():
            argv.append("-n")
        if chunk.family == 6:
            argv.append("-6")
        argv += self.extra.discovery_words(drop=("--exclude-ports",))
        argv += self._tail(name) + self._excludes()
        return argv + self._target_args(name, chunk.targets)

    def _host_group(self) -> list[str]:
        """--max-hostgroup for the discovery passes (unless the user sized the host groups).

        The passes run side by side (known ports, full pass, the service probes' port scans),
        and Nmap names a group's hosts in its capture filter only up to 20 hosts: above that
        each process receives and discards every other's replies. For tens of thousands of
        ports per host a group of 20 still keeps Nmap's probes in flight. Measured with
        bench_scan_ns.py --profile discovery (docs/scanning.md): CPU per probe and memory down.
        """
        if self.extra.has("--min-hostgroup", "--max-hostgroup"):
            return []
        return ["--max-hostgroup", str(tuning.NMAP_FILTER_HOSTS)]

    def known_ports_job(self, name: str, chunk: TargetChunk) -> list[str]:
        """The quick discovery pass: the TCP ports listed in Nmap's nmap-services only."""
        argv = ["nmap", *([] if self.extra.tcp_scan_type else [self.tcp_flag])]
        argv += ["-p", "T:[-]", "-T4", *self._host_group()]
        if not self.extra.resolves_names():
            argv.append("-n")
        if chunk.family == 6:
            argv.append("-6")
        argv += self.extra.discovery_words(drop=("-sU", "-sY", "-sZ"))
        argv += self._tail(name) + self._excludes()
        return argv + self._target_args(name, chunk.targets)

    def service_job(self, name: str, keys: Sequence[tuple[str, str, int]]) -> list[str]:
        """A service-detection process for some open ports found by discovery."""
        hosts = list(dict.fromkeys(addr for addr, _, _ in keys))
        by_proto: dict[str, list[int]] = {}
        for _, proto, port in keys:
            by_proto.setdefault(proto, [])
            if port not in by_proto[proto]:
                by_proto[proto].append(port)
        letters = {"tcp": "T", "udp": "U", "sctp": "S"}
        ports = ",".join(
            f"{letters[proto]}:{','.join(str(p) for p in sorted(nums))}"
            for proto, nums in sorted(by_proto.items(), key=lambda kv: "tus".index(kv[0][0]))
        )
        argv = ["nmap", "-sV", "-Pn", "-n"]
        if "tcp" in by_proto:
            argv.append(self.extra.tcp_scan_type or self.tcp_flag)
        if "udp" in by_proto:
            argv.append("-sU")
        if "sctp" in by_proto:
            argv.append("-sY")
        argv += ["-p", ports, "-T4"]
        if ":" in hosts[0]:
            argv.append("-6")
        scan_types = ("-sS", "-sT", "-sA", "-sW", "-sM", "-sN", "-sF", "-sX", "-sU", "-sY")
        argv += [w for w in self.extra.service_words() if w not in scan_types]
        if self.options.vulners:
            argv += ["--script", "vulners"]
        return argv + self._tail(name) + hosts


# --------------------------------------------------------------------------- running


class _Run:
    def __init__(
        self, options: ScanOptions, plan: _Plan, nmap: str, version: str, sink: ProgressSink
    ) -> None:
        self.options = options
        self.plan = plan
        self.nmap = nmap
        self.version = version
        self.sink = sink
        self.run_dir = options.output_dir
        self.lines: LineQueue = queue.Queue()
        self.jobs: list[Job] = []
        self.start = _now()
        self.t0 = time.monotonic()
        user_timing = plan.extra.has(*tuning.USER_TIMING_FLAGS)
        self.tuning = tuning.choose(plan.targets.count, user_timing=user_timing,
                                    workers=options.workers)  # fmt: skip
        if options.workers:
            self.workers = options.workers
        elif options.ports == "all":
            # Sending 65535 probes per host is CPU-bound where the network is fast: about one
            # process per core; Nmap runs many hosts in parallel inside each.
            self.workers = max(1, min(plan.targets.count, max(2, os.cpu_count() or 1)))
        else:
            self.workers = self.tuning.workers
        # Service probes wait on the network, one port each: they may outnumber the hosts.
        self.service_slots = options.workers or default_workers()
        self.interrupted = False
        self.warnings: list[str] = list(plan.notes)
        self.skipped: dict[str, str] = {}  # target -> why Nmap did not check it
        # all-ports bookkeeping: (address, protocol, port)
        self.open_keys: dict[tuple[str, str, int], None] = {}
        self.pending: list[tuple[str, str, int]] = []
        self._pending_since: dict[tuple[str, str, int], tuple[float, Job]] = {}
        self.identified: set[tuple[str, str, int]] = set()
        self.service_seq = 0
        self._last_update = 0.0
        self._last_runfile = 0.0
        self._job_of: dict[int, Job] = {}

    # ---------------------------------------------------------------- jobs

    def _add_job(self, name: str, phase: WorkerPhase, argv: list[str], targets: Sequence[str],
                 count: int) -> Job:  # fmt: skip
        status = WorkerStatus(
            name=name,
            phase=phase,
            targets=tuple(targets),
            command=tuple(argv),
            xml=Path("xml") / f"{name}.xml",
            log=Path("logs") / f"{name}.log",
            hosts=count,
        )
        job = Job(status, count)
        self.jobs.append(job)
        return job

    def _launch(self, job: Job) -> None:
        argv = [self.nmap, *job.status.command[1:]]
        # Every Nmap runs at flan's own priority. The full pass once ran at nice 5 to favour the
        # service probes; but it is the run's longest part, and beside other busy processes it
        # then got a third of their CPU share: 64 hosts x 65,535 ports with 2 busy loops
        # beside took 250 s at nice 5 against 114 s at nice 0 (bench_scan_ns.py --profile
        # discovery). Service probes mostly wait on sockets and need little CPU.
        job.proc = NmapProcess(
            argv, self.run_dir, self.run_dir / job.status.log, self.lines,
            env=self.plan.nmap.environ(),
        )  # fmt: skip
        self._job_of[id(job.proc)] = job
        try:
            job.proc.start()
        except OSError as exc:
            job.status = replace(
                job.status, status="failed", error=f"cannot start nmap: {exc}", start=_now(),
                end=_now(),
            )  # fmt: skip
            job.proc = None
            return
        job.status = replace(job.status, status="running", start=_now())

    def _running(self, phase: WorkerPhase | None = None) -> list[Job]:
        return running(self.jobs, phase)

    # ---------------------------------------------------------------- output

    def _on_line(self, job: Job, line: str) -> None:
        event = job.parser.feed(line)
        if event is None:
            return
        if isinstance(event, nmapout.OpenPort):
            self._open(job, event.address, event.protocol, event.port)
        elif isinstance(event, nmapout.PortLine):
            if event.state == "open" or (
                event.state == "open|filtered" and event.protocol == "udp"
            ):
                self._open(job, event.address, event.protocol, event.port)
            if event.identified and event.state == "open" and job.status.phase != "discovery":
                self.identified.add((event.address, event.protocol, event.port))
        elif isinstance(event, nmapout.Stats):
            job.hosts_completed = event.hosts_completed
        elif isinstance(event, nmapout.Timing):
            job.remaining = event.remaining
            job.remaining_at = time.monotonic()
        elif isinstance(event, nmapout.PortScanDone):
            job.port_scan_done = True
        elif isinstance(event, nmapout.Done):
            job.done_line = event
        elif isinstance(event, nmapout.Skipped):
            self.skipped.setdefault(event.target, event.reason)

    def _open(self, job: Job, address: str, protocol: str, port: int) -> None:
        key = (address, protocol, port)
        if key in self.open_keys:
            return
        self.open_keys[key] = None
        if job.status.phase == "discovery" and not self.interrupted:
            self.pending.append(key)
            self._pending_since[key] = (time.monotonic(), job)

    def _on_exit(self, job: Job) -> None:
        assert job.proc is not None
        code = job.proc.wait()
        status: WorkerState
        error: str | None
        if code == 0:
            status, error = "done", None
        elif self.interrupted:
            status, error = "interrupted", "stopped by the user"
        else:
            status = "failed"
            error = job.proc.error_message() or f"nmap exited with status {code}"
        job.status = replace(job.status, status=status, exit_code=code, end=_now(), error=error)
        if status == "done":
            job.hosts_completed = job.count

    # ---------------------------------------------------------------- scheduling

    def _launch_services(self) -> None:
        slots = self.service_slots - len(self._running("service"))
        now = time.monotonic()
        # A port waits until the discovery process that found it ends, or RELEASE_AFTER: one
        # Nmap probes many ports in parallel, so a burst is better served by one process than
        # by a process per port, each paying Nmap's start-up (CPU) cost.
        ready = [
            k for k in self.pending
            if self._pending_since[k][1].status.status != "running"
            or now - self._pending_since[k][0] >= RELEASE_AFTER
        ]  # fmt: skip
        while slots > 0 and ready:
            # Spread a large backlog over all slots; keep a small one in a single process.
            size = max(MIN_SERVICE_BATCH, math.ceil(len(ready) / self.service_slots))
            batch, ready = ready[:size], ready[size:]
            taken = set(batch)
            self.pending = [k for k in self.pending if k not in taken]
            self.service_seq += 1
            name = f"service-{self.service_seq:04d}"
            hosts = list(dict.fromkeys(k[0] for k in batch))
            job = self._add_job(name, "service", self.plan.service_job(name, batch), hosts,
                                len(hosts))  # fmt: skip
            job.service_keys = tuple(batch)
            self._launch(job)
            slots -= 1

    def _tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_update >= 0.25:
            self._last_update = now
            self.sink.update(self._progress())
        if force or now - self._last_runfile >= 5:
            self._last_runfile = now
            self.write_runfile(end=None)

    # ---------------------------------------------------------------- main loop

    def plan_first_phase(self) -> None:
        names_family = 6 if self.plan.extra.ipv6 else 4
        chunks = split_targets(self.plan.targets, self.workers, names_family=names_family)
        phase: WorkerPhase = "discovery" if self.options.ports == "all" else "scan"
        width = max(2, len(str(len(chunks))))
        if phase == "discovery":
            # A quick pass over the ports Nmap knows a service for finds most services in a
            # fraction of a second, so their -sV starts while the full pass is still running.
            for i, chunk in enumerate(chunks, 1):
                name = f"discovery-known-{i:0{width}d}"
                argv = self.plan.known_ports_job(name, chunk)
                job = self._add_job(name, phase, argv, chunk.targets, chunk.count)
                job.counts_hosts = False
        known = list(self.jobs)
        for i, chunk in enumerate(chunks, 1):
            name = f"{phase}-{i:0{width}d}"
            if phase == "scan":
                argv = self.plan.scan_job(name, chunk, self.tuning.min_parallelism)
            else:
                argv = self.plan.discovery_job(name, chunk)
            job = self._add_job(name, phase, argv, chunk.targets, chunk.count)
            if known:
                job.after = known[i - 1]

    def _launch_staggered(self) -> None:
        """Start pending top-1000 workers while fewer than tuning's port_scans_at_once are
        starting or port-scanning (see tuning: concurrent port scans read each other's replies)."""
        now = time.monotonic()
        holding = sum(
            1 for j in self._running("scan")
            if not j.port_scan_done and j.proc is not None and j.proc.started_at is not None
            and now - j.proc.started_at < tuning.PORT_SCAN_HOLD
        )  # fmt: skip
        for job in self.jobs:
            if holding >= self.tuning.port_scans_at_once:
                return
            if job.status.phase == "scan" and job.status.status == "pending" and job.proc is None:
                self._launch(job)
                holding += 1

    def _launch_waiting(self) -> None:
        """Start the full discovery passes whose known-ports pass ended (or waited long enough:
        where the network, not the CPU, is the limit, both should run at once)."""
        waited = time.monotonic() - self.t0 >= FULL_PASS_DELAY
        for job in self.jobs:
            if job.status.status == "pending" and job.proc is None:
                if job.after is None or job.after.status.status != "running" or waited:
                    self._launch(job)

    def execute(self) -> None:
        with stop_signals() as stop:
            try:
                if self.options.ports == "all":
                    for job in self.jobs:
                        if job.after is None:
                            self._launch(job)
                else:
                    self._launch_staggered()
                self.write_runfile(end=None)
                self._loop(stop)
            except KeyboardInterrupt:  # where no handler could be installed (not main thread)
                stop.requested = True
            except BaseException:
                self._stop_all()
                raise
        if stop.requested:
            self.interrupted = True
            self.sink.note("interrupted: stopping Nmap; the XML written so far is kept")
            self._stop_all()
            self._drain()

    def _stop_all(self) -> None:
        for job in self._running():
            assert job.proc is not None
            job.proc.stop()

    def _loop(self, stop: StopRequest) -> None:
        while not stop.requested:
            if self.options.ports == "all":
                self._launch_waiting()
                self._launch_services()
            else:
                self._launch_staggered()
            if not self._running() and not self.pending:
                break
            try:
                proc, line = self.lines.get(timeout=0.25)
            except queue.Empty:
                self._tick()
                continue
            job = self._job_of[id(proc)]
            if line is None:
                self._on_exit(job)
                self._tick(force=True)
            else:
                self._on_line(job, line)
                self._tick()

    def _drain(self) -> None:
        """After stopping: collect the exits of every process that was running."""
        deadline = time.monotonic() + 15
        while self._running() and time.monotonic() < deadline:
            try:
                proc, line = self.lines.get(timeout=0.25)
            except queue.Empty:
                continue
            job = self._job_of[id(proc)]
            if line is None:
                self._on_exit(job)
            else:
                self._on_line(job, line)
        for job in self._running():
            job.status = replace(job.status, status="interrupted", end=_now())
        for job in self.jobs:
            if job.proc is None and job.status.status == "pending":
                job.status = replace(job.status, status="not-started")

    # ---------------------------------------------------------------- results

    def drop_empty_xml(self) -> None:
        drop_empty_xml(self.jobs, self.run_dir)

    def finish_warnings(self) -> None:
        self.warnings.extend(
            failure_warnings(self.jobs, self.pending, self.interrupted, self.skipped)
        )

    def _progress(self, finished: bool = False) -> ScanProgress:
        return progress_snapshot(
            self.jobs, pending=self.pending, open_ports=len(self.open_keys),
            services=len(self.identified), total=self.plan.targets.count, started=self.t0,
            interrupted=self.interrupted, all_ports=self.options.ports == "all",
            finished=finished,
        )  # fmt: skip

    def result(self, end: datetime) -> ScanResult:
        incomplete = incomplete_targets(self.jobs, self.pending, self.skipped)
        up, down = host_counts(self.jobs)
        return ScanResult(
            run_dir=self.run_dir,
            targets=tuple(s.text for s in self.options.targets),
            excludes=tuple(s.text for s in self.options.excludes),
            profile=self.options.ports,
            profile_description=self.plan.description,
            ports=self.plan.ports_label,
            nmap_path=self.nmap,
            nmap_version=self.version,
            start=self.start,
            end=end,
            workers=tuple(j.status for j in self.jobs),
            complete=not incomplete and not self.interrupted,
            interrupted=self.interrupted,
            skipped_targets=tuple(self.skipped),
            warnings=tuple(self.warnings),
            incomplete_targets=tuple(incomplete),
            hosts_total=self.plan.targets.count,
            hosts_up=up,
            hosts_down=down,
            open_ports=len(self.open_keys),
            services=len(self.identified),
        )

    def write_runfile(self, end: datetime | None, result: ScanResult | None = None) -> None:
        status: RunStatus = "running"
        if result is not None:
            status = "complete" if result.complete else (
                "interrupted" if result.interrupted else "incomplete"
            )  # fmt: skip
        record = RunRecord(
            flanscan_version=__version__,
            run_id=self.run_dir.name,
            status=status,
            targets=tuple(s.text for s in self.options.targets),
            excludes=tuple(s.text for s in self.options.excludes),
            target_count=self.plan.targets.count,
            profile=self.options.ports,
            profile_description=self.plan.description,
            ports=self.plan.ports_label,
            scan_type=self.plan.tcp_flag,
            privileged=self.plan.privileged,
            extra_args=tuple(mask_argv(self.options.extra_args)),
            vulners=self.options.vulners,
            nmap_path=self.nmap,
            nmap_version=self.version,
            workers_max=self.workers,
            service_workers_max=self.service_slots if self.options.ports == "all" else 0,
            start=self.start,
            end=end,
            nmap_commands=tuple(mask_command(shlex.join(j.status.command)) for j in self.jobs),
            workers=tuple(j.status.record() for j in self.jobs),
            warnings=tuple(self.warnings),
            report_inputs=self.options.report_inputs,
        )
        if result is not None:
            record = replace(
                record,
                incomplete_targets=result.incomplete_targets,
                hosts=HostCounts(result.hosts_total, result.hosts_up, result.hosts_down),
                open_ports=result.open_ports,
                services=result.services,
            )
        write_record(self.run_dir / RUN_FILE, record)


def _startup_error(run: _Run) -> None:
    """When every Nmap quit at once with its own reason, raise it as flan's error."""
    if any(j.status.status == "done" for j in run.jobs) or run.interrupted:
        return
    messages = [
        j.proc.error_message()
        for j in run.jobs
        if j.proc is not None and j.status.status == "failed"
    ]
    reasons = [m for m in messages if m]
    if not reasons or len(reasons) != len([j for j in run.jobs if j.proc is not None]):
        return
    reason = reasons[0]
    text = f"nmap refused to run: {reason}"
    lowered = reason.lower()
    if "root" in lowered or "permit" in lowered or "raw socket" in lowered or "dnet" in lowered:
        raise EnvironmentProblem(f"{text} (run flan as root, or drop the flag that needs it)")
    raise UsageError(f"{text} (check the Nmap flags given after `--`)")


def _port_list(ports: str) -> str | None:
    """--ports: None for a profile (top1000, all), else the Nmap port list it names (checked
    by the one parser of that notation)."""
    if ports in PORTS_CHOICES:
        return None
    try:
        parse_port_list(ports)
    except PortListError as exc:
        raise UsageError(
            f"--ports {ports!r}: {exc}; give top1000, all or an Nmap port list such as "
            "22,80,8000-8100 (U:161 with -- -sU)"
        ) from None
    return ports


def _prepare(options: ScanOptions) -> _Plan:
    port_list = _port_list(options.ports)
    if not options.targets:
        raise UsageError("no targets to scan: give TARGET arguments or -iL FILE")
    check_scope(options.targets, options.excludes, options.max_hosts)
    targets = TargetSet.build(options.targets, options.excludes)
    if targets.count == 0:
        raise UsageError("nothing to scan: every target is excluded")
    run_dir = options.output_dir
    check_dir_target(run_dir, "run directory (--output-dir)")
    if (run_dir / RUN_FILE).exists():
        raise UsageError(f"{run_dir}: already holds a run (run.json); choose another --output-dir")
    extra = PassThrough.parse(options.extra_args)
    if port_list is not None:
        if extra.port_spec is not None:
            raise UsageError(
                f"--ports {options.ports} and the Nmap flags after `--` both choose ports "
                f"({extra.port_spec}): keep one"
            )
        extra = PassThrough.parse(("-p", port_list, *options.extra_args))
    return _Plan(options, targets, run_dir, extra, choose_nmap(_wants_raw(extra)))


def check_scan(options: ScanOptions) -> None:
    """Raise the UsageError / EnvironmentProblem that `run_scan` would, without side effects."""
    _prepare(options)


def run_scan(options: ScanOptions, progress: ProgressSink | None = None) -> ScanResult:
    """Scan with Nmap workers, writing `xml/`, `logs/` and `run.json` under `options.output_dir`.

    Raises UsageError / EnvironmentProblem before anything is scanned (bad flags, nmap missing).
    An interrupted (Ctrl-C) or partly failed scan returns a result with `complete=False`.
    """
    sink = progress or NullProgress()
    plan = _prepare(options)
    nmap = plan.nmap.path
    run_dir = options.output_dir
    version = nmap_version(nmap, plan.nmap.environ())
    try:
        (run_dir / "xml").mkdir(parents=True, exist_ok=True)
        (run_dir / "logs").mkdir(exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"{run_dir}: cannot create the output directory ({exc})") from None
    if options.excludes:
        write_atomic(
            run_dir / "targets" / "exclude.txt", "".join(f"{s.text}\n" for s in options.excludes)
        )
    run = _Run(options, plan, nmap, version, sink)
    for note in plan.notes:
        sink.note(note)
    run.plan_first_phase()
    try:
        run.execute()
    finally:
        end = _now()
        run.drop_empty_xml()
        run.finish_warnings()
        result = run.result(end)
        run.write_runfile(end, result)
        sink.close(run._progress(finished=True))
    _startup_error(run)
    return result
