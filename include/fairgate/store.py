"""Artifact store: where every stage writes what it produced, addressed by key.

One small interface, two backends (local files here; S3 in :mod:`fairgate.s3store`). The rules
that make the evidence trustworthy live in the interface, not in the callers:

- ``put`` is atomic: readers see the whole object or none of it (temp file + rename).
- ``put_new`` creates an object only if the key is free (content-addressed versions, evidence
  records); writing identical bytes again is success, different bytes is :class:`ConflictError`.
- ``swap`` replaces an object only if it still holds the version the caller read (``etag``),
  so two writers racing for the production pointer cannot both win.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fairgate.errors import InputError


class StoreError(RuntimeError):
    """An artifact could not be read or written."""


class NotFoundError(StoreError, KeyError):
    """No object at that key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConflictError(StoreError):
    """A conditional write lost: the key exists, or changed since it was read."""


class IntegrityError(InputError):
    """A stored artifact's bytes no longer match the sha256 recorded when it was written."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, expected_sha256: str, *, where: str, error: type[IntegrityError] = IntegrityError) -> bytes:
    """``data`` if its sha256 is the recorded one; otherwise ``error`` naming ``where`` and both hashes."""
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise error(f"{where}: sha256 {actual} does not match the recorded {expected_sha256}; the file was "
                    "changed or replaced and will not be used.")
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


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"Invalid artifact key {key!r}: keys are relative paths without '.' or '..' parts.")
    return key


def key_inside(root_uri: str, uri: str) -> str:
    """The key of ``uri`` relative to a store's ``root_uri``; refused if it lies outside."""
    prefix = root_uri + "/"
    if not uri.startswith(prefix):
        raise StoreError(f"URI {uri!r} is not inside the artifact store {root_uri!r}.")
    return _check_key(uri[len(prefix):])


class LocalStore:
    """Artifacts as files under one folder; ``etag`` is the sha256 of the content."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root_uri = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def key_of(self, uri: str) -> str:
        from urllib.parse import unquote

        return _check_key(unquote(key_inside(self.root_uri, uri)))  # file URIs percent-encode '=' and more

    def put(self, key: str, data: bytes) -> Written:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return Written(key=key, uri=path.as_uri(), sha256=sha256_bytes(data), size=len(data))

    def put_new(self, key: str, data: bytes) -> Written:
        with self._lock(key):
            path = self._path(key)
            if path.exists():
                if sha256_bytes(path.read_bytes()) == sha256_bytes(data):
                    return Written(key=key, uri=path.as_uri(), sha256=sha256_bytes(data), size=len(data))
                raise ConflictError(f"{self.uri(key)} already exists with different content.")
            return self.put(key, data)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"No artifact at {self.uri(key)}.") from None

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        data = self.get(key)
        return data, sha256_bytes(data)

    def swap(self, key: str, data: bytes, *, expected_etag: str | None) -> Written:
        with self._lock(key):
            path = self._path(key)
            current = sha256_bytes(path.read_bytes()) if path.exists() else None
            if current != expected_etag:
                raise ConflictError(
                    f"{self.uri(key)} changed since it was read (expected etag {expected_etag}, found {current})."
                )
            return self.put(key, data)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def folders(self, prefix: str) -> list[str]:
        """The names one level below the folder ``prefix`` (``"registry/"``: every model's folder), sorted."""
        base = self.root / prefix.rstrip("/") if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


    def list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (plain string prefix, as on S3)."""
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root / folder if folder else self.root
        if not base.is_dir():
            return []
        keys = [p.relative_to(self.root).as_posix() for p in base.rglob("*")
                if p.is_file() and not p.name.startswith(".")]
        return sorted(k for k in keys if k.startswith(prefix))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        """An exclusive lock per key, held across read-compare-write (works across processes)."""
        lock_path = self._path(key).parent / f".{Path(key).name}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def read_recorded(store: ArtifactStore, uri: str) -> bytes | None:
    """An artifact named by URI in an evidence record; a store that was moved or copied since the record
    was written is found by the key's place under ``runs/``, ``audits/`` or ``registry/``. ``None``
    when it is gone. (Callers check its sha256 against the record's.)"""
    from urllib.parse import unquote

    try:
        key = store.key_of(uri)
    except StoreError:
        path = unquote(uri)
        starts = [i for i in (path.rfind("/runs/"), path.rfind("/audits/"), path.rfind("/registry/")) if i >= 0]
        if not starts:
            return None
        key = path[max(starts) + 1:]  # the last such folder: the store root may contain one too
    try:
        return store.get(key)
    except (StoreError, InputError):
        return None


def open_store(root: str | None = None, *, s3_client: object | None = None) -> ArtifactStore:
    """The store at ``root`` (default ``FAIRGATE_ARTIFACT_ROOT``, else ``.artifacts`` in the project).

    ``s3://bucket/prefix`` roots need a boto3 S3 client, passed in by the caller (in Airflow it
    comes from the connection named by ``FAIRGATE_AWS_CONN_ID``).
    """
    root = root or os.environ.get("FAIRGATE_ARTIFACT_ROOT") or str(default_artifact_root())
    if root.startswith("s3://"):
        from fairgate.s3store import S3Store

        if s3_client is None:
            raise StoreError(f"Artifact root {root} is on S3 but no S3 client was given.")
        return S3Store(root, client=s3_client)
    if root.startswith("file://"):
        root = root[len("file://"):]
    if "://" in root:
        raise StoreError(f"Artifact root {root!r} must be a local path, file:// or s3:// URI.")
    return LocalStore(root)


def default_artifact_root() -> Path:
    """``.artifacts`` in the project folder of a source checkout (where ``make demo`` writes), else in the
    working directory."""
    checkout = Path(__file__).resolve().parents[2]
    return (checkout if (checkout / "pyproject.toml").exists() else Path.cwd()) / ".artifacts"
