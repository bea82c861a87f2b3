"""Artifact store: where every stage writes what it produced, addressed by key.

One small interface (:class:`ArtifactStore`), two backends (:mod:`fairgate.storage.local`,
:mod:`fairgate.storage.s3`). The rules
that make the evidence trustworthy live in the interface, not in the callers:

- ``put`` is atomic: readers see the whole object or none of it (temp file + rename).
- ``put_new`` creates an object only if the key is free (content-addressed versions, evidence
  records); writing identical bytes again is success, different bytes is :class:`ConflictError`.
- ``swap`` replaces an object only if it still holds the version the caller read (``etag``),
  so two writers racing for the production pointer cannot both win.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from fairgate.errors import InputError, IntegrityError, NotFoundError, StoreConfigError, StoreError


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, expected_sha256: str, *, where: str, error: type[IntegrityError] = IntegrityError) -> bytes:
    """``data`` if its sha256 is the recorded one; otherwise ``error`` naming ``where`` and both hashes."""
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise error(
            f"{where}: sha256 {actual} does not match the recorded {expected_sha256}; the file was "
            "changed or replaced and will not be used."
        )
    return data


def get_verified(store: ArtifactStore, key: str, expected_sha256: str, *, what: str = "artifact") -> bytes:
    """Read ``key`` and check it against the sha256 recorded when it was written (the one way to read evidence)."""
    try:
        data = store.get(key)
    except NotFoundError:
        raise IntegrityError(f"{what} {store.uri(key)} is missing.") from None
    return verify(data, expected_sha256, where=f"{what} {store.uri(key)}")


@dataclass(frozen=True)
class Written:
    """What a write produced: the key, its URI and the sha256 of the bytes stored."""

    key: str
    uri: str
    sha256: str
    size: int


class ArtifactStore(Protocol):
    root_uri: str

    def uri(self, key: str) -> str: ...
    def key_of(self, uri: str) -> str: ...
    def put(self, key: str, data: bytes) -> Written: ...
    def put_new(self, key: str, data: bytes) -> Written: ...
    def get(self, key: str) -> bytes: ...
    def get_with_etag(self, key: str) -> tuple[bytes, str]: ...
    def swap(self, key: str, data: bytes, *, expected_etag: str | None) -> Written: ...
    def exists(self, key: str) -> bool: ...
    def folders(self, prefix: str) -> list[str]: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreConfigError(f"Invalid artifact key {key!r}: keys are relative paths without '.' or '..' parts.")
    return key


def key_inside(root_uri: str, uri: str) -> str:
    """The key of ``uri`` relative to a store's ``root_uri``; refused if it lies outside."""
    prefix = root_uri + "/"
    if not uri.startswith(prefix):
        raise StoreConfigError(f"URI {uri!r} is not inside the artifact store {root_uri!r}.")
    return check_key(uri[len(prefix) :])


def read_recorded(store: ArtifactStore, uri: str) -> bytes | None:
    """An artifact named by URI in an evidence record; a store that was moved or copied since the record
    was written is found by the key's place under ``runs/``, ``audits/`` or ``registry/``. ``None``
    when it is gone. (Callers check its sha256 against the record's.)"""
    from urllib.parse import unquote

    try:
        key = store.key_of(uri)
    except (StoreError, StoreConfigError):
        path = unquote(uri)
        starts = [i for i in (path.rfind("/runs/"), path.rfind("/audits/"), path.rfind("/registry/")) if i >= 0]
        if not starts:
            return None
        key = path[max(starts) + 1 :]  # the last such folder: the store root may contain one too
    try:
        return store.get(key)
    except (StoreError, InputError):
        return None
