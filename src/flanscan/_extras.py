"""Optional dependencies (`pip install 'flanscan[EXTRA]'`): what each extra brings, and the
one-line error when a feature needs one that is not installed."""

from __future__ import annotations

import importlib
from typing import Literal

from flanscan._errors import EnvironmentProblem

Extra = Literal["pdf", "s3", "gcs", "postgres"]

# extra -> (the module it provides, its distribution, what needs it)
EXTRAS: dict[Extra, tuple[str, str, str]] = {
    "pdf": ("weasyprint", "weasyprint", "PDF reports (--format pdf)"),
    "s3": ("boto3", "boto3", "s3:// storage"),
    "gcs": ("google.cloud.storage", "google-cloud-storage", "gs:// storage"),
    "postgres": ("psycopg", "psycopg", "a postgresql:// history"),
}


class MissingExtra(EnvironmentProblem):
    """A feature whose optional dependency is not installed."""


def require_extra(extra: Extra) -> None:
    """Raise MissingExtra naming the `pip install` to run when `extra` is not installed."""
    module, distribution, what = EXTRAS[extra]
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"{what} needs the optional dependency {distribution}, not installed: "
            f"pip install 'flanscan[{extra}]' (or 'flanscan[all]')"
        ) from None
    except OSError:
        return  # installed, but a system library is missing: the feature's own error says so
