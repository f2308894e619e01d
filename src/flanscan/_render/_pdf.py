"""PDF report: the print variant of the HTML report laid out by WeasyPrint (no TeX needed).

WeasyPrint never fetches anything here: the document has no external resources, and the URL
fetcher refuses every request anyway (no network access at report time).
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from flanscan._errors import EnvironmentProblem
from flanscan._model import Report
from flanscan._render._html import render_print_html


def _refuse_fetch(url: str, *args: Any, **kwargs: Any) -> NoReturn:
    raise ValueError(f"refusing to fetch {url!r} while rendering a report")


def render_pdf(report: Report) -> bytes:
    """The PDF report as bytes."""
    from flanscan._extras import require_extra

    require_extra("pdf")
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango/HarfBuzz libraries missing
        raise EnvironmentProblem(
            f"cannot write PDF reports: WeasyPrint is unusable ({exc}); "
            "run scripts/setup to install its libraries, or choose another --format"
        ) from exc
    # WeasyPrint warns about every CSS property it ignores; that is noise for users.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    html = weasyprint.HTML(string=render_print_html(report), url_fetcher=_refuse_fetch)
    pdf = html.write_pdf()
    assert isinstance(pdf, bytes)
    return pdf
