# Flan Scan container: Debian's Nmap, the flanscan package in a venv, a non-root user whose only
# extra power is the raw-socket capability Nmap needs. See docs/fleet.md.
#
#   docker build -t flanscan .
#   docker build -t flanscan --build-arg VULNDB_DIR=path/to/feeds .   # bake the CVE database in
#
# Run: the entrypoint is `flan`; the default command scans /shared/ips.txt (the original's file).
FROM debian:bookworm-slim

# Feed files (NVD CVE 2.0 JSON[.gz], CISA KEV JSON, EPSS CSV[.gz]) in this directory of the build
# context are imported into the image's vulnerability database at build time; the default
# directory holds only a README, so the database is expected as a mounted volume at $FLAN_DB.
ARG VULNDB_DIR=deploy/vulndb

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Distribution packages are not pinned: they come from bookworm and its security updates, which
# is what a rebuilt image should pick up.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        nmap \
        libcap2-bin \
        python3 \
        python3-venv \
        ca-certificates \
        libpango-1.0-0 \
        libpangoft2-1.0-0 \
        libharfbuzz-subset0 \
        fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    # Only CAP_NET_RAW, and no "+i": Nmap may open raw sockets, nothing else. A capability in the
    # file that the pod does not grant makes exec fail (EPERM), so this must match the pod's
    # securityContext (add: NET_RAW).
    && setcap cap_net_raw+ep /usr/bin/nmap \
    && apt-get purge -y libcap2-bin \
    && useradd --system --uid 10001 --user-group --home-dir /results --shell /usr/sbin/nologin flan \
    && install -d -o flan -g flan /results /var/lib/flan

COPY pyproject.toml README.md LICENSE /opt/flan-src/
COPY src /opt/flan-src/src
RUN python3 -m venv /opt/flan \
    && /opt/flan/bin/pip install --no-cache-dir /opt/flan-src \
    && rm -rf /opt/flan-src

COPY ${VULNDB_DIR} /tmp/vulndb
RUN find /tmp/vulndb -type f \( -name '*.json' -o -name '*.json.gz' -o -name '*.csv' \
        -o -name '*.csv.gz' \) -print0 \
    | xargs -0 -r /opt/flan/bin/flan db import --db /var/lib/flan/vulndb.sqlite3 \
    && rm -rf /tmp/vulndb \
    && chown -R flan:flan /var/lib/flan

ENV PATH=/opt/flan/bin:$PATH \
    FLAN_DB=/var/lib/flan/vulndb.sqlite3 \
    NMAP_PRIVILEGED=1 \
    PYTHONUNBUFFERED=1

# Results are written below the working directory: mount an emptyDir here when the root
# filesystem is read-only.
WORKDIR /results
USER 10001:10001

ENTRYPOINT ["flan"]
CMD ["scan", "-iL", "/shared/ips.txt"]
