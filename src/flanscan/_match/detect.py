"""What a service is, in NVD terms: products with their NVD names and upstream versions.

Input is what Nmap wrote for a port: its application CPEs (2.2 URIs, maybe several, maybe
without a version) and product / version / extrainfo. Operating-system and hardware CPEs on a
port are not the service: they are never matched as the vulnerable product.
"""

from __future__ import annotations

from dataclasses import dataclass

from flanscan._match.aliases import (
    ProductAlias,
    alias_for_cpe,
    alias_for_product_name,
    alias_for_version_text,
)
from flanscan._match.cpe import ANY, NA, Cpe, parse_cpe
from flanscan._match.versions import BannerVersion, upstream_version
from flanscan._model import ServiceObservation


@dataclass(frozen=True, slots=True)
class DetectedProduct:
    """One product of a service, ready to match."""

    nvd_names: tuple[tuple[str, str], ...]  # (vendor, product) the NVD may use, current first
    version: str | None  # upstream version ("9.2p1"); None when unknown
    version_text: str | None  # what Nmap said ("9.2p1 Debian 2+deb12u7", "9.6.0 or later")
    unknown_reason: str | None  # why `version` is None
    detected_cpe: str | None  # the Nmap CPE it came from, as written
    source: str  # how Nmap named it: "igor_sysoev:nginx", or "product 'OpenSSH'" without CPE
    version_rule_used: bool = False  # the version text was read by an alias rule (MariaDB)
    extras: tuple[str, ...] = (ANY,) * 6  # edition ... other from Nmap's CPE

    def alias_for(self, nvd_vendor: str, nvd_product: str) -> str | None:
        """How Nmap's name became the NVD name in a criteria; None when they are the same."""
        nvd = f"{nvd_vendor}:{nvd_product}"
        if self.version_rule_used:
            return f"Nmap {self.source} {self.version_text!r} = NVD {nvd} {self.version}"
        if self.source != nvd:
            return f"Nmap {self.source} = NVD {nvd}"
        return None


def _version_from(
    alias: ProductAlias | None, text: str | None
) -> tuple[str | None, str | None, bool]:
    """(upstream version, reason when unknown, whether an alias rule read it)."""
    if text is None or not text.strip():
        return None, "no version detected", False
    if alias is not None and alias.version_rule is not None:
        ruled = alias.version_rule(text)
        if ruled is not None:
            return ruled, None, True
    found: BannerVersion = upstream_version(text)
    return found.version, found.reason, False


def detect_products(service: ServiceObservation) -> list[DetectedProduct]:
    """The products to match for one service, without duplicates."""
    banner_version = service.version.strip() if service.version else None
    banner_uncertain = (
        banner_version is not None and upstream_version(banner_version).version is None
    )
    by_name = alias_for_product_name(service.product)
    marker = alias_for_version_text(banner_version)

    app_cpes: list[tuple[str, Cpe]] = []
    for raw in service.cpes:
        cpe = parse_cpe(raw)
        if cpe is not None and cpe.part == "a" and cpe.vendor not in (ANY, NA):
            app_cpes.append((raw, cpe))

    out: list[DetectedProduct] = []
    seen: set[tuple[tuple[tuple[str, str], ...], str | None]] = set()

    def add(product: DetectedProduct) -> None:
        key = (product.nvd_names, product.version)
        if key not in seen:
            seen.add(key)
            out.append(product)

    for index, (raw, cpe) in enumerate(app_cpes):
        alias = alias_for_cpe(cpe.vendor, cpe.product)
        cpe_version = cpe.version if cpe.version not in (ANY, NA) else None
        # Nmap's first application CPE is the product it named; later ones are components
        # with their own versions (OpenSSL on an Apache line) and never take the banner's.
        primary = index == 0 or (by_name is not None and alias is by_name)
        ruled = False
        if primary and banner_uncertain:
            # e.g. "9.6.4 - 9.6.6 or 9.6.13 - 9.6.19" with cpe:/a:postgresql:postgresql:9.6
            text: str | None = banner_version
            version, reason = None, upstream_version(banner_version).reason
        else:
            text = cpe_version or (banner_version if primary else None)
            if primary and banner_version and cpe_version:
                # Keep what the host said (case, distribution suffix) when it is the same version.
                if banner_version.lower().startswith(cpe_version):
                    text = banner_version
            # MariaDB answers as MySQL: its version text names it, whatever CPE Nmap chose.
            marked = alias_for_version_text(text)
            if marked is not None:
                alias = marked
            version, reason, ruled = _version_from(alias, text)
        names = alias.nvd_names if alias is not None else ((cpe.vendor, cpe.product),)
        source = f"{cpe.vendor}:{cpe.product}"
        add(DetectedProduct(names, version, text, reason, raw, source, ruled, cpe.extras()))

    if not app_cpes:
        alias = marker or by_name
        if alias is not None:
            version, reason, ruled = _version_from(alias, banner_version)
            source = f"product {service.product!r}"
            add(
                DetectedProduct(
                    alias.nvd_names, version, banner_version, reason, None, source, ruled
                )
            )
    return out
