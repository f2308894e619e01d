# Flan Scan container: Debian's Nmap, the flanscan package in a venv, a non-root user whose only
# extra power is the raw-socket capability Nmap needs. See docs/fleet.md.
#
#   docker build -t flanscan .            (or: podman build -t flanscan .)
#   docker build -t flanscan --build-arg VULNDB_DIR=path/in/context .   # bake the CVE database in
#   behind an HTTPS-intercepting proxy, pass its CA bundle and a pip.conf as build secrets
#   (mounted for the pip step only, nothing stays in the image):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
#                --secret id=pipconf,src=$HOME/.config/pip/pip.conf -t flanscan .
#
# Stages: `runtime` (Debian packages, the user, both Nmaps) -> `build` (pinned dependencies from
# requirements.lock, then the package; pip and setuptools live only here) -> `vulndb` (optional
# feed import) -> the final image = runtime + /opt/flan + the database. No SHELL line (ignored in
# OCI format) and no pipes in RUN, so every RUN fails on its first failing command (`set -e`).
# Run: the entrypoint is `flan`; the default command scans /shared/ips.txt (the original's file).

FROM debian:bookworm-slim AS runtime

# Distribution packages are not pinned: they come from bookworm and its security updates, which
# is what a rebuilt image should pick up.
# hadolint ignore=DL3008
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        nmap \
        libcap2-bin \
        python3 \
        ca-certificates \
        libpango-1.0-0 \
        libpangoft2-1.0-0 \
        libharfbuzz-subset0 \
        fonts-dejavu-core \
        libpq5; \
    # A copy without the file capability for pods that do not grant NET_RAW (exec of the other
    # one fails with EPERM there) or set no_new_privs: flan picks it and runs a connect scan.
    install -m 0755 /usr/bin/nmap /usr/local/bin/nmap-unprivileged; \
    # Only CAP_NET_RAW, and no "+i": Nmap may open raw sockets, nothing else.
    setcap cap_net_raw+ep /usr/bin/nmap; \
    apt-get purge -y --auto-remove libcap2-bin; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log; \
    groupadd --system --gid 10001 flan; \
    useradd --system --uid 10001 --gid 10001 --home-dir /results --shell /usr/sbin/nologin flan; \
    install -d -o flan -g flan /results /var/lib/flan

FROM runtime AS build
# hadolint ignore=DL3008
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3-venv binutils; \
    rm -rf /var/lib/apt/lists/*
# Dependencies first, from the lock file alone: a source change does not download them again.
COPY requirements.lock /tmp/requirements.lock
# The optional secrets `ca` (a CA bundle) and `pipconf` (a pip.conf: index, proxy, timeouts)
# exist only during this RUN.
RUN --mount=type=secret,id=ca,required=false --mount=type=secret,id=pipconf,required=false \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    if [ -s /run/secrets/pipconf ]; then export PIP_CONFIG_FILE=/run/secrets/pipconf; fi; \
    python3 -m venv /opt/flan; \
    /opt/flan/bin/pip install --no-cache-dir --disable-pip-version-check --no-compile \
        --require-hashes --only-binary :all: -r /tmp/requirements.lock
COPY pyproject.toml README.md LICENSE /opt/flan-src/
COPY src /opt/flan-src/src
RUN set -eu; \
    /opt/flan/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-compile \
        --no-build-isolation --no-index "/opt/flan-src[all]"; \
    # Size (the image's target is 250 MB): psycopg's binary wheel bundles its own libpq,
    # OpenSSL, Kerberos and LDAP (10.8 MB); without it psycopg is pure Python over Debian's
    # libpq5 (installed above, 1.1 MB: Python already brings Kerberos and OpenSSL).
    /opt/flan/bin/pip uninstall -y --disable-pip-version-check setuptools pip psycopg-binary; \
    # The wheels' extension modules carry symbols (29 MB);
    # no bytecode is kept (33 MB; compiling the imports costs about 1 s per start, and a
    # read-only root keeps nothing); WeasyPrint hyphenates only for `hyphens: auto`, which the
    # report does not use, so only English hyphenation dictionaries are kept.
    find /opt/flan -name '*.so' -not -path '*.libs/*' -exec strip --strip-unneeded {} +; \
    find /opt/flan -name '__pycache__' -prune -exec rm -rf {} +; \
    # fontTools ships the Cython-generated C sources of its compiled modules (8 MB), which are
    # never read at run time (cffi's headers are: they stay).
    find /opt/flan -name '*.c' -path '*/site-packages/*' -delete; \
    find /opt/flan/lib/python3*/site-packages/pyphen/dictionaries -type f -not -name 'hyph_en*' \
        -delete; \
    # botocore carries the API models of every AWS service (most of its size); flan talks to S3
    # and, for credentials, to STS, SSO, SSO-OIDC and sign-in only.
    find /opt/flan/lib/python3*/site-packages/botocore/data -mindepth 1 -maxdepth 1 -type d \
        ! -name s3 ! -name sts ! -name sso ! -name sso-oidc ! -name signin -exec rm -rf {} +

# Feed files (NVD CVE 2.0 JSON[.gz], CISA KEV JSON, EPSS CSV[.gz]) in VULNDB_DIR (a directory
# of the build context) are imported into the image's database; the default directory holds only
# a README, so the database is then expected as a volume at $FLAN_DB. Declared here, after the
# dependency layers, so that changing it rebuilds only this stage.
FROM runtime AS vulndb
COPY --from=build /opt/flan /opt/flan
ARG VULNDB_DIR=deploy/vulndb
COPY ${VULNDB_DIR} /tmp/vulndb
RUN set -eu; \
    find /tmp/vulndb -type f \( -name '*.json' -o -name '*.json.gz' -o -name '*.csv' \
        -o -name '*.csv.gz' \) -exec /opt/flan/bin/flan db import \
        --db /var/lib/flan/vulndb.sqlite3 {} +; \
    chown -R flan:flan /var/lib/flan

FROM runtime
COPY --from=build /opt/flan /opt/flan
COPY --from=vulndb /var/lib/flan /var/lib/flan

# The history beside the runs under the writable /results (the user data directory, flan's
# default elsewhere, is on the read-only root here).
ENV PATH=/opt/flan/bin:$PATH \
    FLAN_DB=/var/lib/flan/vulndb.sqlite3 \
    FLAN_HISTORY=/results/flan-results/history.sqlite3 \
    NMAP_PRIVILEGED=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Results are written below the working directory: mount an emptyDir here when the root
# filesystem is read-only.
WORKDIR /results
USER 10001:10001

ENTRYPOINT ["flan"]
CMD ["scan", "-iL", "/shared/ips.txt"]
