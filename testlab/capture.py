"""Capture real Nmap XML from the lab into tests/data/lab/ (re-runnable; see docs/test-lab.md).

    .venv/bin/python -m testlab.capture [--out DIR] [NAME ...]

Builds its own lab, runs each capture's Nmap command inside the scanner namespace, and writes
``<NAME>.xml`` plus ``manifest.json``: the lab as it was at capture time (hosts, addresses,
hostnames, services with the Debian package versions installed then, and what Nmap was expected
to report), and for each capture the exact command, Nmap version and what it shows. Parser tests
assert against ``manifest.json``, never against the packages installed when the tests run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from testlab._lab import Lab, requirement_problems

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "data" / "lab"


@dataclass(frozen=True)
class Capture:
    name: str
    description: str
    argv: Callable[[Lab, Path], list[str]]  # Nmap's argv, given the lab and the XML path
    user: str | None = None  # run as this user instead of root
    interrupt: bool = False  # kill Nmap once the first host is written


def _udp_hosts(lab: Lab) -> list[str]:
    with_udp = [h.ipv4 for h in lab.hosts if h.udp_services]
    without = [h.ipv4 for h in lab.hosts if h.services and not h.udp_services][:1]
    return with_udp + without


def _udp_ports(lab: Lab) -> str:
    ports = sorted({s.port for h in lab.hosts for s in h.udp_services} | {161})
    return ",".join(map(str, ports))


CAPTURES: tuple[Capture, ...] = (
    Capture(
        "default",
        "Flan's default profile: ping discovery, SYN scan of the top 1000 TCP ports, -sV, "
        "all lab hosts (Redis 6379 and memcached 11211 are outside the top 1000)",
        lambda lab, out: [
            "nmap",
            "-sS",
            "-sV",
            "--top-ports",
            "1000",
            "-oX",
            str(out),
            *lab.targets,
        ],
    ),
    Capture(
        "all-ports",
        "every TCP port with -sV, all lab hosts (finds Redis and memcached too)",
        lambda lab, out: ["nmap", "-p-", "-sV", "-oX", str(out), *lab.targets],
    ),
    Capture(
        "ipv6",
        "IPv6 scan with -sV of the lab's IPv6 host (top 1000 ports)",
        lambda lab, out: ["nmap", "-6", "-sV", "-oX", str(out), *lab.targets6],
    ),
    Capture(
        "udp",
        "UDP scan with -sV (intensity 0) of 161 (closed) and memcached's UDP port, which is "
        "open but unidentified (memcached 1.6 answers in two datagrams); plus a host where "
        "both are closed",
        lambda lab, out: [
            "nmap",
            "-sU",
            "-sV",
            "--version-intensity",
            "0",
            "-p",
            _udp_ports(lab),
            "-oX",
            str(out),
            *_udp_hosts(lab),
        ],
    ),
    Capture(
        "interrupted",
        "all TCP ports with -sV, one host at a time, killed (SIGKILL) after the first host was "
        "written: the file is cut short and lacks </nmaprun>",
        lambda lab, out: [
            "nmap",
            "-p-",
            "-sV",
            "--max-hostgroup",
            "1",
            "-oX",
            str(out),
            *lab.targets,
        ],
        interrupt=True,
    ),
    Capture(
        "connect-nonroot",
        "connect scan (-sT -sV, top 1000 ports) run as user nobody inside the scanner namespace, "
        "as Flan does when not root",
        lambda lab, out: [
            "nmap",
            "-sT",
            "-sV",
            "--top-ports",
            "1000",
            "-oX",
            str(out),
            *lab.targets,
        ],
        user="nobody",
    ),
)


def _nmap_version(lab: Lab) -> str:
    out: str = lab.exec(["nmap", "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


def _run_capture(lab: Lab, cap: Capture, dest: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="flanlab-capture-") as tmp:
        tmpdir = Path(tmp)
        if cap.user is not None:
            shutil.chown(tmpdir, cap.user)
        out = tmpdir / dest.name
        # Nmap runs in the temporary directory so the recorded command reads "-oX <name>.xml".
        argv = cap.argv(lab, Path(dest.name))
        started = time.monotonic()
        proc = lab.popen(
            argv,
            user=cap.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmpdir,
        )
        if cap.interrupt:
            while proc.poll() is None:
                if out.exists() and "</host>" in out.read_text(errors="replace"):
                    break
                time.sleep(0.1)
            if proc.poll() is None:
                # ip netns exec execs nmap (and setpriv too), so this pid is nmap itself.
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        else:
            _, err = proc.communicate(timeout=1800)
            if proc.returncode != 0:
                raise RuntimeError(f"capture {cap.name}: nmap failed ({proc.returncode}): {err}")
        seconds = time.monotonic() - started
        text = out.read_text()
        if cap.interrupt:
            if "</nmaprun>" in text or "</host>" not in text:
                raise RuntimeError(f"capture {cap.name}: nmap was not interrupted mid-run")
        elif "</nmaprun>" not in text:
            raise RuntimeError(f"capture {cap.name}: {out} is incomplete")
        shutil.copyfile(out, dest)
    return {
        "file": dest.name,
        "description": cap.description,
        "command": argv,
        "user": cap.user or "root",
        "interrupted": cap.interrupt,
        "seconds": round(seconds, 1),
        "hosts_complete": text.count("</host>"),
    }


def _manifest(lab: Lab) -> dict[str, object]:
    return {
        "lab": lab.name,
        "scanner_namespace": lab.scanner_namespace,
        "hosts": [
            {
                "name": h.name,
                "ipv4": h.ipv4,
                "ipv6": h.ipv6,
                "hostname": h.hostname,
                "services": [dataclasses.asdict(s) for s in h.services],
                "udp_services": [dataclasses.asdict(s) for s in h.udp_services],
            }
            for h in lab.hosts
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testlab.capture",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    known = [c.name for c in CAPTURES]
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="captures to run (default all): " + ", ".join(known),
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"unknown capture {', '.join(unknown)}; choose from {', '.join(known)}")
    problems = requirement_problems()
    if problems:
        print("capture: cannot build the lab: " + "; ".join(problems), file=sys.stderr)
        return 2
    wanted = [c for c in CAPTURES if not args.names or c.name in args.names]
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "manifest.json"
    index: dict[str, object] = {}
    if index_path.exists():
        index = json.loads(index_path.read_text())
    captures = dict(index.get("captures", {}))  # type: ignore[call-overload]
    with Lab() as lab:
        nmap = _nmap_version(lab)
        for cap in wanted:
            print(f"capture {cap.name} ...", file=sys.stderr, flush=True)
            info = _run_capture(lab, cap, out_dir / f"{cap.name}.xml")
            info["nmap"] = nmap
            info["captured"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            captures[cap.name] = info
            print(
                f"  {info['file']}: {info['hosts_complete']} hosts, {info['seconds']} s",
                file=sys.stderr,
            )
        index = {**_manifest(lab), "captures": captures}
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    print(f"capture: wrote {len(wanted)} files and {index_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
