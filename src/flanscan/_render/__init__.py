"""Report renderers: one module per format, each rendering a `Report` and nothing else.

Grouping and ordering are the report builder's job (`flanscan._report`); a renderer keeps the
order it is given and only chooses how to show it. Every text that can come from a scanned host
(banners, product names, hostnames, script output) or from a feed (CVE summaries) is escaped for
the target format by the renderer that writes it.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from typing import IO, cast

from flanscan._errors import UsageError
from flanscan._model import Report

FORMATS = ("json", "html", "md", "csv", "tex", "pdf", "sarif", "cyclonedx")

# format -> (module, function); imported on first use so that WeasyPrint is only loaded for PDF.
_RENDERERS: dict[str, tuple[str, str]] = {
    "json": ("flanscan._render._json", "render_json"),
    "html": ("flanscan._render._html", "render_html"),
    "md": ("flanscan._render._md", "render_md"),
    "csv": ("flanscan._render._csv", "render_csv"),
    "tex": ("flanscan._render._tex", "render_tex"),
    "pdf": ("flanscan._render._pdf", "render_pdf"),
    "sarif": ("flanscan._render._sarif", "render_sarif"),
    "cyclonedx": ("flanscan._render._cyclonedx", "render_cyclonedx"),
}

# format -> (module, function writing text to a stream): the text formats, which run to
# gigabytes at fleet scale (an entry per finding and location), are written as they are made.
_WRITERS: dict[str, tuple[str, str]] = {
    "json": ("flanscan._render._json", "write_json"),
    "csv": ("flanscan._render._csv", "write_csv"),
    "html": ("flanscan._render._html", "write_html"),
    "md": ("flanscan._render._md", "write_md"),
    "tex": ("flanscan._render._tex", "write_tex"),
    "sarif": ("flanscan._render._sarif", "write_sarif"),
}

# format -> file name extension (CycloneDX's own convention for JSON BOMs is `.cdx.json`)
EXTENSIONS = {**{fmt: fmt for fmt in FORMATS}, "cyclonedx": "cdx.json"}


def format_of_path(path: str) -> str | None:
    """The format a file name's extension names (`report.cdx.json` -> cyclonedx,
    `out.sarif` -> sarif), or None when it names none."""
    name = path.lower()
    for fmt, ext in sorted(EXTENSIONS.items(), key=lambda item: -len(item[1])):
        if name.endswith(f".{ext}"):
            return fmt
    return None


def _function(table: dict[str, tuple[str, str]], fmt: str) -> Callable[..., object]:
    module_name, attr = table[fmt]
    return cast(Callable[..., object], getattr(importlib.import_module(module_name), attr))


def _check(fmt: str) -> None:
    if fmt not in _RENDERERS:
        raise UsageError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")


def render(report: Report, fmt: str) -> bytes:
    """Render `report` in format `fmt` (one of `FORMATS`) and return the file's bytes."""
    _check(fmt)
    data = _function(_RENDERERS, fmt)(report)
    assert isinstance(data, bytes)
    return data


def write_report(report: Report, fmt: str, out: IO[bytes]) -> None:
    """Write `report` in format `fmt` to the binary stream `out` (the same bytes as `render`);
    the text formats are streamed, so their size never has to fit in memory."""
    _check(fmt)
    if fmt not in _WRITERS:
        out.write(render(report, fmt))
        return
    # newline="": the renderers choose their line ends (CSV's are CRLF).
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    try:
        _function(_WRITERS, fmt)(report, text)
        text.flush()
    finally:
        text.detach()  # the caller owns `out`


__all__ = ["EXTENSIONS", "FORMATS", "format_of_path", "render", "write_report"]
