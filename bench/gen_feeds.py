"""Generate a full-size NVD CVE 2.0 feed set from the real sample, for bench/bench_db.py.

    .venv/bin/python bench/gen_feeds.py [OUT_DIR] [--count 300000]

Writes `nvdcve-2.0-YYYY.json.gz` (2002 .. this year) with `.meta` files, plus an empty
`modified` feed, into OUT_DIR (default bench/out/feeds). Records are the sample's real records
(rejected and awaiting-analysis ones included, in the sample's proportions) with new CVE ids,
and for most copies renamed products (so the index holds tens of thousands of products, as the
NVD does) and shifted version bounds; the rest keep their real products, so common products get
a few hundred CVEs each. Years get the NVD's real growth curve. Compact JSON, gzip level 6.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO.parent / "shared" / "nvd-sample" / "nvdcve-2.0-sample.json"

# Approximate CVE counts per id year in the NVD (thousands); scaled to --count.
YEAR_WEIGHTS = {
    2002: 2.4, 2003: 1.5, 2004: 2.7, 2005: 4.7, 2006: 7.0, 2007: 6.5, 2008: 7.0, 2009: 5.0,
    2010: 5.0, 2011: 4.6, 2012: 5.5, 2013: 6.5, 2014: 8.5, 2015: 8.5, 2016: 10.5, 2017: 18.0,
    2018: 18.5, 2019: 17.5, 2020: 20.0, 2021: 22.0, 2022: 26.0, 2023: 30.0, 2024: 40.0,
    2025: 40.0,
}  # fmt: skip
# Share of copies that keep the sample's real vendor:product names: OpenSSH (named by 11 sample
# records) then gets about 300 CVEs, Apache httpd about 170, in the NVD's order of magnitude.
KEEP_REAL_PRODUCTS = 0.012
PRODUCT_VARIANTS = 25_000  # renamed copies spread over this many product names per product

_CRITERIA = re.compile(r'"criteria":"(cpe:2\.3:[aoh]:[^:"]+:)([^:"]+)(:)')
_BOUND = re.compile(r'"(version(?:Start|End)(?:In|Ex)cluding)":"(\d+)\.(\d+)([^"]*)"')


def years() -> list[int]:
    return list(range(2002, datetime.now(UTC).year + 1))


def mutate(template: str, old_id: str, new_id: str, rng: random.Random) -> str:
    text = template.replace(old_id, new_id)
    if rng.random() >= KEEP_REAL_PRODUCTS:
        variant = rng.randrange(PRODUCT_VARIANTS)
        text = _CRITERIA.sub(lambda m: f'"criteria":"{m[1]}{m[2]}-g{variant}{m[3]}', text)
    shift = rng.randrange(0, 4)
    if shift:
        text = _BOUND.sub(lambda m: f'"{m[1]}":"{m[2]}.{int(m[3]) + shift}{m[4]}"', text)
    return text


def write_year(out: Path, year: int, count: int, templates: list[tuple[str, str]]) -> int:
    rng = random.Random(year)
    name = f"nvdcve-2.0-{year}"
    digest = hashlib.sha256()
    size = 0
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000")
    with gzip.open(out / f"{name}.json.gz", "wb", compresslevel=6) as gz:

        def put(text: str) -> None:
            nonlocal size
            data = text.encode()
            digest.update(data)
            gz.write(data)
            size += len(data)

        put(
            f'{{"resultsPerPage":{count},"startIndex":0,"totalResults":{count},'
            f'"format":"NVD_CVE","version":"2.0","timestamp":"{stamp}","vulnerabilities":['
        )
        for n in range(count):
            old_id, template = templates[(n + year) % len(templates)]
            new_id = f"CVE-{year}-{n + 1:05d}"
            put(("," if n else "") + '{"cve":' + mutate(template, old_id, new_id, rng) + "}")
        put("]}")
    gz_size = (out / f"{name}.json.gz").stat().st_size
    (out / f"{name}.meta").write_text(
        f"lastModifiedDate:{datetime.now(UTC).isoformat(timespec='seconds')}\r\n"
        f"size:{size}\r\nzipSize:{gz_size}\r\ngzSize:{gz_size}\r\n"
        f"sha256:{digest.hexdigest().upper()}\r\n"
    )
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=REPO / "bench" / "out" / "feeds")
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    records = [v["cve"] for v in json.loads(args.sample.read_text())["vulnerabilities"]]
    templates = [(r["id"], json.dumps(r, separators=(",", ":"))) for r in records]
    ys = years()
    weights = [YEAR_WEIGHTS.get(y, YEAR_WEIGHTS[2025]) for y in ys]
    counts = [int(args.count * w / sum(weights)) for w in weights]
    counts[-1] += args.count - sum(counts)
    with ProcessPoolExecutor() as pool:
        sizes = list(pool.map(write_year, [args.out] * len(ys), ys, counts, [templates] * len(ys)))
    empty = b'{"format":"NVD_CVE","version":"2.0","vulnerabilities":[]}'
    (args.out / "nvdcve-2.0-modified.json.gz").write_bytes(gzip.compress(empty))
    (args.out / "nvdcve-2.0-modified.meta").write_text(
        f"sha256:{hashlib.sha256(empty).hexdigest().upper()}\r\n"
    )
    gz_total = sum(p.stat().st_size for p in args.out.glob("*.json.gz"))
    print(f"wrote {sum(counts)} CVEs in {len(ys)} yearly feeds to {args.out}")
    print(f"JSON {sum(sizes) / 1e9:.2f} GB uncompressed, {gz_total / 1e6:.0f} MB gzip")


if __name__ == "__main__":
    main()
