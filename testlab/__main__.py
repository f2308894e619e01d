"""``python -m testlab up|down|status|exec -- CMD...``: the lab by hand (docs/test-lab.md)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from testlab._lab import (
    DEFAULT_NAME,
    STATE_ROOT,
    Lab,
    LabError,
    _listening,
    _netns_list,
    cleanup,
    requirement_problems,
)


def _print_manifest(lab: Lab) -> None:
    print(f"lab {lab.name}: scanner namespace {lab.scanner_namespace}, state {lab.state_dir}")
    hosts = [*lab.hosts, *([lab.banner_host] if lab.banner_host else [])]
    for h in hosts:
        addrs = " ".join(h.addresses)
        listening = _listening(h.namespace)
        print(f"  {h.name:<6} {h.namespace:<16} {addrs}  {h.hostname or ''}")
        if not h.services:
            print("           (nothing open)")
        for s in h.all_services:
            ok = all((s.protocol, a, s.port) in listening for a in h.addresses)
            state = "listening" if ok else "NOT LISTENING"
            shown = f"{s.nmap_product} {s.nmap_version or ''}".strip() if s.nmap_product else "?"
            print(
                f"           {s.port}/{s.protocol} {s.daemon:<10} {state:<13} "
                f"{s.debian_package or ''} {s.package_version or ''}  -> {shown}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testlab", description=__doc__)
    parser.add_argument(
        "--name",
        default=DEFAULT_NAME,
        help=f"lab name, prefix of its namespaces (default {DEFAULT_NAME})",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build the lab and leave it running")
    sub.add_parser("down", help="remove the lab (kills its daemons, deletes its namespaces)")
    sub.add_parser("status", help="show the lab's hosts, services and whether they listen")
    for verb in ("stop", "start"):
        p = sub.add_parser(verb, help=f"{verb} one daemon of a lab host (e.g. {verb} db redis)")
        p.add_argument("host")
        p.add_argument("daemon")
    p_exec = sub.add_parser("exec", help="run a command in the scanner namespace")
    p_exec.add_argument("--user", help="run as this user (e.g. nobody) instead of root")
    p_exec.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            problems = requirement_problems()
            if problems:
                print("testlab: cannot build the lab: " + "; ".join(problems), file=sys.stderr)
                return 2
            t0 = time.monotonic()
            lab = Lab(args.name).up()
            lab.keep_after_exit()
            _print_manifest(lab)
            print(
                f"up in {time.monotonic() - t0:.1f} s; "
                f"scripts/lab exec -- nmap -sV {' '.join(lab.targets)}"
            )
            return 0
        if args.command == "down":
            removed = cleanup(args.name, STATE_ROOT)
            print(f"lab {args.name}: removed {len(removed)} namespaces")
            return 0
        if args.command == "status":
            present = [ns for ns in _netns_list() if ns.startswith(f"{args.name}-")]
            if not present:
                print(f"lab {args.name} is down")
                return 1
            _print_manifest(Lab.attach(args.name))
            return 0
        if args.command in ("stop", "start"):
            lab = Lab.attach(args.name)
            try:
                if args.command == "stop":
                    lab.stop_service(args.host, args.daemon)
                else:
                    lab.start_service(args.host, args.daemon)
            except KeyError as e:
                print(f"testlab: {e.args[0]}", file=sys.stderr)
                return 2
            done = {"stop": "stopped", "start": "started"}[args.command]
            print(f"lab {args.name}: {args.daemon} on {args.host} {done}")
            return 0
        if args.command == "exec":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not cmd:
                parser.error("exec needs a command: exec -- CMD...")
            lab = Lab.attach(args.name)
            return lab.exec(cmd, user=args.user, check=False).returncode
    except LabError as e:
        print(f"testlab: {e}", file=sys.stderr)
        return 1
    except subprocess.SubprocessError as e:
        print(f"testlab: {e}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
