"""The real Debian daemons of the lab: how each is configured, started, and what Nmap calls it.

Every daemon runs in the foreground (so the process we start is the daemon and we know its pid),
bound to its host's addresses only, with its configuration, pid, log and data files inside the
lab's state directory. Nothing here touches the system's own configuration of these packages.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


def strip_epoch(version: str) -> str:
    """``"1:9.2p1-2+deb12u7"`` -> ``"9.2p1-2+deb12u7"``."""
    return re.sub(r"^\d+:", "", version)


def upstream_version(version: str) -> str:
    """The upstream part of a Debian version: ``"1:9.2p1-2+deb12u7"`` -> ``"9.2p1"``."""
    v = strip_epoch(version)
    return v.rsplit("-", 1)[0] if "-" in v else v


def debian_revision(version: str) -> str:
    """The Debian revision of a version: ``"1:9.2p1-2+deb12u7"`` -> ``"2+deb12u7"``."""
    v = strip_epoch(version)
    return v.rsplit("-", 1)[1] if "-" in v else ""


def openssh_nmap_version(version: str) -> str:
    """Debian's sshd banner is ``OpenSSH_9.2p1 Debian-2+deb12u7``; Nmap reports
    ``9.2p1 Debian 2+deb12u7``."""
    rev = debian_revision(version)
    return f"{upstream_version(version)} Debian {rev}" if rev else upstream_version(version)


def postgres_nmap_version(version: str) -> str | None:
    """Nmap cannot read PostgreSQL's version from the wire (the server does not announce it)."""
    return None


def nmap_cpe(daemon: Daemon, package_version: str) -> str:
    """The CPE Nmap reports for ``daemon`` at this Debian version."""
    if daemon.nmap_version(package_version) is None:
        return daemon.nmap_cpe_prefix
    return f"{daemon.nmap_cpe_prefix}:{upstream_version(package_version)}"


def package_version(package: str) -> str:
    """The installed version of a Debian package, read with dpkg-query now (never hard-coded)."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise LookupError(f"Debian package {package} is not installed")
    return out.stdout.strip()


@dataclass(frozen=True)
class DaemonContext:
    """What a daemon needs to write its configuration: its host's addresses and a private dir."""

    host: str
    ipv4: str
    ipv6: str | None
    port: int
    workdir: Path  # private to this daemon on this host; created empty by the lab
    log: Path

    @property
    def addresses(self) -> list[str]:
        return [self.ipv4] + ([self.ipv6] if self.ipv6 else [])


@dataclass(frozen=True)
class Launch:
    """How to run a prepared daemon: argv (first element absolute) and the user to run as."""

    argv: list[str]
    user: str | None = None  # None: root
    group: str | None = None


@dataclass(frozen=True)
class Daemon:
    """One kind of daemon: its identity in the manifest and how to prepare a run of it."""

    name: str  # short id used in the lab API: "sshd", "nginx", ...
    debian_package: str  # package whose version the daemon reports
    binary: str  # absolute path checked before the lab starts
    default_port: int
    nmap_service: str  # Nmap's service name (<service name=...>)
    nmap_product: str  # Nmap's product (<service product=...>)
    nmap_version: Callable[[str], str | None]
    nmap_cpe_prefix: str  # Nmap's CPE; the upstream version is appended when Nmap knows it
    prepare: Callable[[DaemonContext], Launch]
    prepare_once: Callable[[DaemonContext], Sequence[Launch]] | None = None  # slow setup steps
    also_udp: bool = False  # also serves UDP on the same port
    stop_signal: int = signal.SIGTERM


# --- sshd -------------------------------------------------------------------------------------


def _prepare_sshd(ctx: DaemonContext) -> Launch:
    key = ctx.workdir / "ssh_host_ed25519_key"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"flanlab-{ctx.host}", "-f", key],
            check=True,
            stdin=subprocess.DEVNULL,
        )
    # sshd refuses to start without its privilege-separation directory.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    listen = "\n".join(
        f"ListenAddress {a}:{ctx.port}" if ":" not in a else f"ListenAddress [{a}]:{ctx.port}"
        for a in ctx.addresses
    )
    conf = ctx.workdir / "sshd_config"
    conf.write_text(
        f"""# flanlab sshd on {ctx.host}
{listen}
HostKey {key}
PidFile {ctx.workdir / "sshd.pid"}
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers flanlab-nobody
UseDNS no
LogLevel INFO
"""
    )
    return Launch(["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)])


SSHD = Daemon(
    name="sshd",
    debian_package="openssh-server",
    binary="/usr/sbin/sshd",
    default_port=22,
    nmap_service="ssh",
    nmap_product="OpenSSH",
    nmap_version=openssh_nmap_version,
    nmap_cpe_prefix="cpe:/a:openbsd:openssh",
    prepare=_prepare_sshd,
)


# --- nginx ------------------------------------------------------------------------------------


def _prepare_nginx(ctx: DaemonContext) -> Launch:
    root = ctx.workdir / "html"
    root.mkdir(exist_ok=True)
    (root / "index.html").write_text(f"<!doctype html><title>flanlab {ctx.host}</title>\n")
    listen = "\n".join(
        f"    listen {a}:{ctx.port};" if ":" not in a else f"    listen [{a}]:{ctx.port};"
        for a in ctx.addresses
    )
    w = ctx.workdir
    conf = w / "nginx.conf"
    conf.write_text(
        f"""# flanlab nginx on {ctx.host}
user www-data;
worker_processes 1;
pid {w / "nginx.pid"};
error_log {ctx.log} info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {w / "client_body"};
    proxy_temp_path {w / "proxy"};
    fastcgi_temp_path {w / "fastcgi"};
    uwsgi_temp_path {w / "uwsgi"};
    scgi_temp_path {w / "scgi"};
    server {{
{listen}
        server_name {ctx.host};
        root {root};
    }}
}}
"""
    )
    return Launch(["/usr/sbin/nginx", "-c", str(conf), "-p", str(w), "-g", "daemon off;"])


NGINX = Daemon(
    name="nginx",
    debian_package="nginx",
    binary="/usr/sbin/nginx",
    default_port=80,
    nmap_service="http",
    nmap_product="nginx",
    nmap_version=upstream_version,
    nmap_cpe_prefix="cpe:/a:igor_sysoev:nginx",
    prepare=_prepare_nginx,
)


# --- Apache httpd -----------------------------------------------------------------------------

_APACHE_MODULES = "/usr/lib/apache2/modules"


def _prepare_apache2(ctx: DaemonContext) -> Launch:
    w = ctx.workdir
    docroot = w / "htdocs"
    docroot.mkdir(exist_ok=True)
    (docroot / "index.html").write_text(f"<!doctype html><title>flanlab {ctx.host}</title>\n")
    listen = "\n".join(
        f"Listen {a}:{ctx.port}" if ":" not in a else f"Listen [{a}]:{ctx.port}"
        for a in ctx.addresses
    )
    conf = w / "apache2.conf"
    # A complete configuration of our own (-f), so none of Debian's APACHE_* variables are needed.
    conf.write_text(
        f"""# flanlab Apache httpd on {ctx.host}
ServerRoot {w}
DefaultRuntimeDir {w}
PidFile {w / "apache2.pid"}
Mutex file:{w} default
LoadModule mpm_event_module {_APACHE_MODULES}/mod_mpm_event.so
LoadModule authz_core_module {_APACHE_MODULES}/mod_authz_core.so
LoadModule dir_module {_APACHE_MODULES}/mod_dir.so
LoadModule mime_module {_APACHE_MODULES}/mod_mime.so
User www-data
Group www-data
ServerName {ctx.host}.flanlab
{listen}
ErrorLog {ctx.log}
LogLevel warn
StartServers 1
MinSpareThreads 5
MaxSpareThreads 10
ThreadsPerChild 5
MaxRequestWorkers 10
DocumentRoot {docroot}
DirectoryIndex index.html
TypesConfig /etc/mime.types
<Directory />
    Require all granted
</Directory>
"""
    )
    return Launch(["/usr/sbin/apache2", "-f", str(conf), "-DFOREGROUND"])


APACHE2 = Daemon(
    name="apache2",
    debian_package="apache2",
    binary="/usr/sbin/apache2",
    default_port=80,
    nmap_service="http",
    nmap_product="Apache httpd",
    nmap_version=upstream_version,
    nmap_cpe_prefix="cpe:/a:apache:http_server",
    prepare=_prepare_apache2,
)


# --- PostgreSQL 15 ----------------------------------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _pgdata(ctx: DaemonContext) -> Path:
    return ctx.workdir / "data"


def _prepare_postgres_once(ctx: DaemonContext) -> list[Launch]:
    shutil.chown(ctx.workdir, "postgres", "postgres")
    if (_pgdata(ctx) / "PG_VERSION").exists():
        return []
    return [
        Launch(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(_pgdata(ctx)),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            user="postgres",
            group="postgres",
        )
    ]


def _prepare_postgres(ctx: DaemonContext) -> Launch:
    return Launch(
        [
            str(PG_BIN / "postgres"),
            "-D",
            str(_pgdata(ctx)),
            "-c",
            f"listen_addresses={','.join(ctx.addresses)}",
            "-c",
            f"port={ctx.port}",
            "-c",
            f"unix_socket_directories={ctx.workdir}",
            "-c",
            "fsync=off",
            "-c",
            "shared_buffers=16MB",
            "-c",
            "max_connections=20",
            "-c",
            "logging_collector=off",
        ],
        user="postgres",
        group="postgres",
    )


POSTGRES = Daemon(
    name="postgres",
    debian_package="postgresql-15",
    binary=str(PG_BIN / "postgres"),
    default_port=5432,
    nmap_service="postgresql",
    nmap_product="PostgreSQL DB",
    nmap_version=postgres_nmap_version,
    nmap_cpe_prefix="cpe:/a:postgresql:postgresql",
    prepare=_prepare_postgres,
    prepare_once=_prepare_postgres_once,
    stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM waits for every client to leave
)


# --- Redis ------------------------------------------------------------------------------------


def _prepare_redis(ctx: DaemonContext) -> Launch:
    shutil.chown(ctx.workdir, "redis", "redis")
    conf = ctx.workdir / "redis.conf"
    conf.write_text(
        f"""# flanlab Redis on {ctx.host}
bind {" ".join(ctx.addresses)}
port {ctx.port}
protected-mode no
daemonize no
supervised no
dir {ctx.workdir}
pidfile {ctx.workdir / "redis.pid"}
logfile ""
save ""
appendonly no
"""
    )
    shutil.chown(conf, "redis", "redis")
    return Launch(["/usr/bin/redis-server", str(conf)], user="redis", group="redis")


REDIS = Daemon(
    name="redis",
    debian_package="redis-server",
    binary="/usr/bin/redis-server",
    default_port=6379,
    nmap_service="redis",
    nmap_product="Redis key-value store",
    nmap_version=upstream_version,
    nmap_cpe_prefix="cpe:/a:redislabs:redis",
    prepare=_prepare_redis,
)


# --- vsftpd -----------------------------------------------------------------------------------


def _prepare_vsftpd(ctx: DaemonContext) -> Launch:
    empty = ctx.workdir / "empty"
    empty.mkdir(mode=0o555, exist_ok=True)
    conf = ctx.workdir / "vsftpd.conf"
    # vsftpd listens on one address per process; the lab gives vsftpd an IPv4 address only.
    # Read-only anonymous access to an empty directory: with every login disabled vsftpd answers
    # "500 OOPS" instead of its banner and Nmap cannot read the version.
    conf.write_text(
        f"""# flanlab vsftpd on {ctx.host}
listen=YES
listen_ipv6=NO
listen_address={ctx.ipv4}
listen_port={ctx.port}
background=NO
anonymous_enable=YES
anon_root={empty}
no_anon_password=YES
anon_upload_enable=NO
anon_mkdir_write_enable=NO
local_enable=NO
write_enable=NO
secure_chroot_dir={empty}
pam_service_name=vsftpd
xferlog_enable=NO
vsftpd_log_file={ctx.log}
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
"""
    )
    return Launch(["/usr/sbin/vsftpd", str(conf)])


VSFTPD = Daemon(
    name="vsftpd",
    debian_package="vsftpd",
    binary="/usr/sbin/vsftpd",
    default_port=21,
    nmap_service="ftp",
    nmap_product="vsftpd",
    nmap_version=upstream_version,
    nmap_cpe_prefix="cpe:/a:vsftpd:vsftpd",
    prepare=_prepare_vsftpd,
)


# --- memcached --------------------------------------------------------------------------------


def _prepare_memcached(ctx: DaemonContext) -> Launch:
    return Launch(
        [
            "/usr/bin/memcached",
            "-u",
            "memcache",
            "-l",
            ",".join(ctx.addresses),
            "-p",
            str(ctx.port),
            # UDP too (off by default since memcached 1.5.6): the lab's real UDP service.
            "-U",
            str(ctx.port),
            "-m",
            "16",
            "-c",
            "64",
            "-v",
        ]
    )


MEMCACHED = Daemon(
    name="memcached",
    debian_package="memcached",
    binary="/usr/bin/memcached",
    default_port=11211,
    nmap_service="memcached",
    nmap_product="Memcached",  # Nmap's spelling
    nmap_version=upstream_version,
    nmap_cpe_prefix="cpe:/a:memcached:memcached",
    prepare=_prepare_memcached,
    also_udp=True,
)


DAEMONS: dict[str, Daemon] = {
    d.name: d for d in (SSHD, NGINX, APACHE2, POSTGRES, REDIS, VSFTPD, MEMCACHED)
}
