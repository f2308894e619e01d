"""S3 (and S3-compatible) storage through boto3.

Credentials and region come from boto3's standard chain only: environment variables, shared
config/credentials files and profiles (AWS_PROFILE), web identity (EKS IRSA / Pod Identity) or
the instance role. An S3-compatible server is chosen with boto3's own AWS_ENDPOINT_URL_S3 (or
AWS_ENDPOINT_URL). Nothing here reads, prints or stores a secret.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from flanscan._deadline import DeadlineExceeded, call_with_deadline
from flanscan._safefile import fill_atomic
from flanscan._storage._sink import StorageError, checked_key, storage_deadline

T = TypeVar("T")

# S3 error codes that retrying cannot fix.
_PERMANENT = {
    "NoSuchBucket",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidBucketName",
    "ExpiredToken",
    "InvalidToken",
    "403",
    "404",
    "NoSuchKey",
}


class S3Sink:
    """Objects below `s3://bucket/prefix/`."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client: Any = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Few library-level retries: flan retries whole operations with its own pauses, so
            # a dead endpoint is reported in seconds, not minutes.
            config = Config(
                retries={"mode": "standard", "total_max_attempts": 2},
                connect_timeout=10,
                read_timeout=60,
            )
            self._client = boto3.session.Session().client("s3", config=config)
        return self._client

    def _key(self, key: str) -> str:
        checked_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            # A total deadline per operation: the client's timeouts are per read.
            return call_with_deadline(fn, storage_deadline(), what)
        except DeadlineExceeded as exc:
            raise StorageError(str(exc)) from None
        except NoCredentialsError:
            raise StorageError(
                f"{what}: no AWS credentials found (set them in the environment, a profile, or "
                "the pod's web identity / service account)",
                permanent=True,
            ) from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise StorageError(f"{what}: {exc}", permanent=code in _PERMANENT) from None
        except S3UploadFailedError as exc:
            # boto3's transfer layer wraps the S3 error; its code says whether to retry.
            cause = exc.__context__
            code = ""
            if isinstance(cause, ClientError):
                code = str(cause.response.get("Error", {}).get("Code", ""))
            raise StorageError(f"{what}: {cause or exc}", permanent=code in _PERMANENT) from None
        except BotoCoreError as exc:
            raise StorageError(f"{what}: {exc}") from None
        except OSError as exc:
            raise StorageError(f"{what}: {exc}") from None

    def put_file(self, local: Path, key: str) -> None:
        extra = {}
        content_type = mimetypes.guess_type(local.name)[0]
        if content_type:
            extra["ContentType"] = content_type
        self._call(
            f"upload to s3://{self.bucket}/{self._key(key)}",
            lambda: self.client.upload_file(
                str(local), self.bucket, self._key(key), ExtraArgs=extra or None
            ),
        )

    def get_file(self, key: str, local: Path) -> None:
        self._call(
            f"download s3://{self.bucket}/{self._key(key)}",
            lambda: fill_atomic(
                local, lambda tmp: self.client.download_file(self.bucket, self._key(key), tmp)
            ),
        )

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        base = f"{self.prefix}/" if self.prefix else ""

        def run() -> list[str]:
            keys = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    keys.append(str(item["Key"])[len(base) :])
            return sorted(keys)

        return self._call(f"list s3://{self.bucket}/{full}", run)

    def delete(self, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[i : i + 1000]]
            self._call(
                f"delete from s3://{self.bucket}/{self.prefix}",
                lambda batch=batch: self.client.delete_objects(  # type: ignore[misc]
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                ),
            )
