"""The artifact store on S3 (or MinIO, or any S3-compatible server), through a boto3 client.

The caller supplies the client (in Airflow: ``S3Hook(...).get_conn()``), so credentials,
region, ``endpoint_url`` and retry settings stay in configuration. The store's rules map onto
S3's own guarantees:

- ``put``: one ``PutObject`` (atomic), or above ``multipart_threshold`` a multipart upload that
  becomes visible only when completed and is aborted on any error; either way S3 checks the
  SHA-256 we send with every part.
- ``put_new``: ``PutObject`` with ``If-None-Match: *`` (create once).
- ``swap``: ``PutObject`` with ``If-Match: <etag read>`` (or ``If-None-Match: *`` for the first
  write): compare-and-swap, so the loser of a race gets HTTP 412 and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from fairgate.errors import ConflictError, NotFoundError, StoreConfigError
from fairgate.storage.base import Written, check_key, key_inside, sha256_bytes

PART_SIZE = 8 * 1024 * 1024


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _code(exc: Exception) -> tuple[str, int]:
    resp = getattr(exc, "response", None) or {}
    return str(resp.get("Error", {}).get("Code", "")), int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3Store:
    def __init__(self, root: str, *, client: Any, multipart_threshold: int = PART_SIZE):
        if not root.startswith("s3://"):
            raise StoreConfigError(f"S3 artifact root must start with s3://, got {root!r}.")
        bucket, _, prefix = root[len("s3://") :].partition("/")
        if not bucket:
            raise StoreConfigError(f"S3 artifact root {root!r} names no bucket.")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = client
        self.multipart_threshold = multipart_threshold
        self.root_uri = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def __repr__(self) -> str:
        return f"S3Store({self.root_uri!r})"

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def key_of(self, uri: str) -> str:
        return key_inside(self.root_uri, uri)

    def _raise(self, exc: Exception, key: str) -> None:
        code, status = _code(exc)
        where = self.uri(key)
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            raise ConflictError(f"{where}: the object exists or changed since it was read ({code or status}).") from exc
        if code in ("NoSuchKey", "404", "NotFound") or (status == 404 and code != "NoSuchBucket"):
            raise NotFoundError(f"No artifact at {where}.") from exc
        if code == "NoSuchBucket":
            raise StoreConfigError(
                f"Bucket {self.bucket!r} does not exist; create it or fix FAIRGATE_ARTIFACT_ROOT."
            ) from exc
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
            raise StoreConfigError(
                f"Access to {where} denied ({code}); check the credentials of the S3 connection (FAIRGATE_AWS_CONN_ID)."
            ) from exc
        raise exc

    def put(self, key: str, data: bytes) -> Written:
        try:
            if len(data) > self.multipart_threshold:
                self._multipart(key, data)
            else:
                self.client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, ChecksumSHA256=_b64_sha256(data)
                )
        except Exception as exc:
            self._raise(exc, key)
        return Written(key=key, uri=self.uri(key), sha256=sha256_bytes(data), size=len(data))

    def _multipart(self, key: str, data: bytes) -> None:
        """Upload in parts; nothing is visible at ``key`` unless every part and the completion succeed."""
        k = self._key(key)
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=k, ChecksumAlgorithm="SHA256")
        upload_id = upload["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, len(data), PART_SIZE), start=1):
                chunk = data[start : start + PART_SIZE]
                resp = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=k,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ChecksumSHA256=_b64_sha256(chunk),
                )
                parts.append(
                    {
                        "PartNumber": number,
                        "ETag": resp["ETag"],
                        "ChecksumSHA256": resp.get("ChecksumSHA256", _b64_sha256(chunk)),
                    }
                )
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=k, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=k, UploadId=upload_id)
            except Exception:  # noqa: S110 - the bucket's lifecycle rule removes what abort could not
                pass
            raise

    def put_new(self, key: str, data: bytes) -> Written:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*", ChecksumSHA256=_b64_sha256(data)
            )
        except Exception as exc:
            try:
                self._raise(exc, key)
            except ConflictError:
                if sha256_bytes(self.get(key)) != sha256_bytes(data):
                    raise ConflictError(f"{self.uri(key)} already exists with different content.") from None
        return Written(key=key, uri=self.uri(key), sha256=sha256_bytes(data), size=len(data))

    def get(self, key: str) -> bytes:
        return self.get_with_etag(key)[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return resp["Body"].read(), resp["ETag"]
        except Exception as exc:
            self._raise(exc, key)
            raise  # unreachable: _raise always raises

    def swap(self, key: str, data: bytes, *, expected_etag: str | None) -> Written:
        condition = {"IfMatch": expected_etag} if expected_etag else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ChecksumSHA256=_b64_sha256(data), **condition
            )
        except Exception as exc:
            self._raise(exc, key)
        return Written(key=key, uri=self.uri(key), sha256=sha256_bytes(data), size=len(data))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception as exc:
            try:
                self._raise(exc, key)
            except NotFoundError:
                return False
            raise

    def folders(self, prefix: str) -> list[str]:
        """The names one level below the folder ``prefix`` (``Delimiter="/"``: no key below them is listed)."""
        top = self.prefix + "/" if self.prefix else ""
        full = (self._key(prefix.rstrip("/")) + "/") if prefix.strip("/") else top
        names: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full, Delimiter="/"
            ):
                names.extend(p["Prefix"][len(full) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        except Exception as exc:
            self._raise(exc, prefix or ".")
        return sorted(names)

    def list(self, prefix: str) -> list[str]:
        full = (
            self._key(prefix.rstrip("/")) + ("/" if prefix.endswith("/") else "")
            if prefix
            else (self.prefix + "/" if self.prefix else "")
        )
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except Exception as exc:
            self._raise(exc, prefix or ".")
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            self._raise(exc, key)
