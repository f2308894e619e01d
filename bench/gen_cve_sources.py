"""Generate full-size CVE 5 and override archives from the real records, for
bench/bench_cve_sources.py.

    .venv/bin/python bench/gen_cve_sources.py [OUT_DIR] [--records 300000] [--overrides 35000]

Writes OUT_DIR (default bench/out/cve-sources):
- `cvelistV5.zip`: the cvelistV5 tree (`cvelistV5-main/cves/<year>/<n>xxx/CVE-....json`),
  `--records` CVE JSON 5 records: a third with CNA `affected` version ranges (copies of the real
  records of ../shared/cve-sources: free text, `changes`, `lessThan: "*"`, cpeApplicability),
  the rest prose-only (`n/a / n/a`, as most real records); a tenth carry a CISA ADP container
  (SSVC, and for some affected entries with CPEs);
- `nvd-data-overrides.tar.gz`: `--overrides` override files (`data/<year>/CVE-....json`).
Most copies get renamed vendors/products (so the index holds tens of thousands of products);
about 2 % keep the lab's real products, so matching has work to do.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SOURCES = REPO.parent / "shared" / "cve-sources"
KEEP_REAL = 0.02
VARIANTS = 20_000
_ID = re.compile(r"CVE-\d{4}-\d{4,}")
_CPE = re.compile(r"(cpe:2\.3:[aoh]:[^:\"]+:)([^:\"]+)")


def _load(pattern: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(SOURCES.glob(pattern))]


def _ranged(record: dict[str, Any]) -> bool:
    cna = record["containers"]["cna"]
    named = any(
        (a.get("vendor") or "n/a", a.get("product") or "n/a") != ("n/a", "n/a")
        for a in cna.get("affected", [])
        if a.get("versions")
    )
    return named or bool(cna.get("cpeApplicability"))


def _rename(text: str, rng: random.Random) -> str:
    if rng.random() < KEEP_REAL:
        return text
    v = rng.randrange(VARIANTS)
    text = _CPE.sub(lambda m: f"{m[1]}{m[2]}-g{v}", text)
    text = re.sub(r'"product": "((?!n/a")[^"]+)"', lambda m: f'"product": "{m[1]} g{v}"', text)
    # The description names the renamed product too (else every copy would name a lab product).
    return re.sub(
        r'("lang": "en",\s*"value": ")(?:[^"\\]|\\.)*(")',
        lambda m: f"{m[1]}A flaw in product g{v} before {v % 9}.{v % 13} lets attackers in.{m[2]}",
        text,
    )


def _strip_adp(record: dict[str, Any]) -> dict[str, Any]:
    record["containers"].pop("adp", None)
    return record


def _year_and_id(n: int, total: int) -> tuple[int, str]:
    year = 1999 + (n * 27) // total
    return year, f"CVE-{year}-{100000 + n}"


def gen_cve5(out: Path, count: int, rng: random.Random) -> None:
    records = _load("cvelistV5/cves/*/*/*.json") + _load("vulnrichment/*/*/*.json")
    # Prose-only records: every CNA entry is "n/a / n/a" (as most real records). ADP containers
    # are added to a tenth of the copies below, not inherited from vulnrichment's templates.
    ranged = [
        json.dumps(_strip_adp(json.loads(json.dumps(r))), indent=2) for r in records if _ranged(r)
    ]
    plain = [
        json.dumps(_strip_adp(json.loads(json.dumps(r))), indent=2)
        for r in records
        if all(
            (a.get("vendor") or "n/a", a.get("product") or "n/a") == ("n/a", "n/a")
            for a in r["containers"]["cna"].get("affected", [])
        )
    ]
    adp_source = next(
        r for r in records
        if any(a.get("providerMetadata", {}).get("shortName") == "CISA-ADP" and a.get("affected")
               for a in r["containers"].get("adp", []))
    )  # fmt: skip
    adp = next(
        a for a in adp_source["containers"]["adp"]
        if a.get("providerMetadata", {}).get("shortName") == "CISA-ADP"
    )  # fmt: skip
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for n in range(count):
            year, cve_id = _year_and_id(n, count)
            template = ranged[n % len(ranged)] if n % 3 == 0 else plain[n % len(plain)]
            text = _rename(_ID.sub(cve_id, template), rng)
            if n % 10 == 1:
                record = json.loads(text)
                record["containers"].setdefault("adp", []).append(
                    json.loads(_rename(json.dumps(adp), rng))
                )
                text = json.dumps(record, indent=2)
            name = f"cvelistV5-main/cves/{year}/{(100000 + n) // 1000}xxx/{cve_id}.json"
            archive.writestr(name, text)


def gen_overrides(out: Path, count: int, rng: random.Random) -> None:
    templates = [
        json.dumps(json.loads(p.read_text()), indent=2)
        for p in sorted(SOURCES.glob("nvd-data-overrides/data/*/*.json"))
    ]
    with tarfile.open(out, "w:gz") as archive:
        for n in range(count):
            year, cve_id = _year_and_id(n * 7, count * 7)
            text = _rename(_ID.sub(cve_id, templates[n % len(templates)]), rng).encode()
            info = tarfile.TarInfo(f"nvd-data-overrides-main/data/{year}/{cve_id}.json")
            info.size = len(text)
            info.mtime = 1_760_000_000
            archive.addfile(info, io.BytesIO(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=REPO / "bench/out/cve-sources")
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--overrides", type=int, default=35_000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(9)
    start = time.perf_counter()
    gen_cve5(args.out / "cvelistV5.zip", args.records, rng)
    gen_overrides(args.out / "nvd-data-overrides.tar.gz", args.overrides, rng)
    for name in ("cvelistV5.zip", "nvd-data-overrides.tar.gz"):
        size = (args.out / name).stat().st_size
        print(f"{args.out / name}: {size / 2**20:.0f} MiB")
    print(f"generated in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
