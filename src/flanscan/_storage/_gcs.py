"""Google Cloud Storage through google-cloud-storage.

Credentials come from Application Default Credentials only: GOOGLE_APPLICATION_CREDENTIALS,
gcloud's user credentials, or the metadata server (GKE Workload Identity). With
STORAGE_EMULATOR_HOST set, the client library talks to that emulator anonymously. Nothing here
reads, prints or stores a secret.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from flanscan._deadline import DeadlineExceeded, call_with_deadline
from flanscan._safefile import fill_atomic
from flanscan._storage._sink import StorageError, checked_key, storage_deadline

T = TypeVar("T")

# (connect, read) seconds per request; flan retries whole operations itself.
_TIMEOUT = (10, 120)


class GcsSink:
    """Objects below `gs://bucket/prefix/`."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self._bucket: Any = None

    @property
    def url(self) -> str:
        return f"gs://{self.bucket_name}" + (f"/{self.prefix}" if self.prefix else "")

    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            from google.cloud import storage

            def make() -> Any:
                if os.environ.get("STORAGE_EMULATOR_HOST"):
                    from google.auth.credentials import AnonymousCredentials

                    client = storage.Client(
                        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                        project=os.environ.get("GOOGLE_CLOUD_PROJECT", "flan-emulator"),
                    )
                else:
                    client = storage.Client()
                return client.bucket(self.bucket_name)

            self._bucket = self._call(f"connect to {self.url}", make)
        return self._bucket

    def _key(self, key: str) -> str:
        checked_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as authexc

        try:
            # A total deadline per operation: the client's timeouts are per read.
            return call_with_deadline(fn, storage_deadline(), what)
        except DeadlineExceeded as exc:
            raise StorageError(str(exc)) from None
        except authexc.DefaultCredentialsError:
            raise StorageError(
                f"{what}: no Google Cloud credentials found (set GOOGLE_APPLICATION_CREDENTIALS, "
                "or use Workload Identity)",
                permanent=True,
            ) from None
        except (gexc.NotFound, gexc.Forbidden, gexc.Unauthorized, gexc.BadRequest) as exc:
            raise StorageError(f"{what}: {exc.message}", permanent=True) from None
        except gexc.GoogleAPICallError as exc:
            raise StorageError(f"{what}: {exc.message}") from None
        except authexc.GoogleAuthError as exc:
            raise StorageError(f"{what}: authentication failed ({type(exc).__name__})") from None
        except (OSError, ValueError) as exc:
            # requests' connection errors are OSErrors whose text repeats the URL several times.
            errno = re.search(r"\[Errno -?\d+\][^\"')]*", str(exc))
            reason = errno.group(0).strip() if errno else f"{type(exc).__name__}: {exc}"
            raise StorageError(f"{what}: cannot reach the server ({reason})") from None

    def put_file(self, local: Path, key: str) -> None:
        blob_name = self._key(key)
        content_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
        self._call(
            f"upload to gs://{self.bucket_name}/{blob_name}",
            lambda: self.bucket.blob(blob_name).upload_from_filename(
                str(local), content_type=content_type, timeout=_TIMEOUT, retry=None
            ),
        )

    def get_file(self, key: str, local: Path) -> None:
        blob_name = self._key(key)
        self._call(
            f"download gs://{self.bucket_name}/{blob_name}",
            lambda: fill_atomic(
                local,
                lambda tmp: self.bucket.blob(blob_name).download_to_filename(
                    tmp, timeout=_TIMEOUT, retry=None
                ),
            ),
        )

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        base = f"{self.prefix}/" if self.prefix else ""

        def run() -> list[str]:
            blobs = self.bucket.client.list_blobs(
                self.bucket_name, prefix=full, timeout=_TIMEOUT, retry=None
            )
            return sorted(str(b.name)[len(base) :] for b in blobs)

        return self._call(f"list gs://{self.bucket_name}/{full}", run)

    def delete(self, keys: Sequence[str]) -> None:
        from google.api_core import exceptions as gexc

        for key in keys:
            blob_name = self._key(key)

            def run(name: str = blob_name) -> None:
                try:
                    self.bucket.blob(name).delete(timeout=_TIMEOUT, retry=None)
                except gexc.NotFound:
                    pass

            self._call(f"delete gs://{self.bucket_name}/{blob_name}", run)
