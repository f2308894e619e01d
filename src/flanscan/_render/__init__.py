"""Report renderers: one module per format, each rendering a `Report` and nothing else.

Grouping and ordering are the report builder's job (`flanscan._report`); a renderer keeps the
order it is given and only chooses how to show it. Every text that can come from a scanned host
(banners, product names, hostnames, script output) or from a feed (CVE summaries) is escaped for
the target format by the renderer that writes it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from flanscan._errors import UsageError
from flanscan._model import Report

FORMATS = ("json", "html", "md", "csv", "tex", "pdf")

# format -> (module, function); imported on first use so that WeasyPrint is only loaded for PDF.
_RENDERERS: dict[str, tuple[str, str]] = {
    "json": ("flanscan._render._json", "render_json"),
    "html": ("flanscan._render._html", "render_html"),
    "md": ("flanscan._render._md", "render_md"),
    "csv": ("flanscan._render._csv", "render_csv"),
    "tex": ("flanscan._render._tex", "render_tex"),
    "pdf": ("flanscan._render._pdf", "render_pdf"),
}

EXTENSIONS = {fmt: fmt for fmt in FORMATS}


def render(report: Report, fmt: str) -> bytes:
    """Render `report` in format `fmt` (one of `FORMATS`) and return the file's bytes."""
    try:
        module_name, attr = _RENDERERS[fmt]
    except KeyError:
        raise UsageError(
            f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}"
        ) from None
    func = cast(Callable[[Report], bytes], getattr(importlib.import_module(module_name), attr))
    return func(report)


__all__ = ["EXTENSIONS", "FORMATS", "render"]
