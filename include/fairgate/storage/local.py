"""The artifact store as files under one folder: atomic renames and a lock file per key."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

from fairgate.errors import ConflictError, NotFoundError
from fairgate.storage.base import Written, check_key, key_inside, sha256_bytes


class LocalStore:
    """Artifacts as files under one folder; ``etag`` is the sha256 of the content."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root_uri = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def key_of(self, uri: str) -> str:
        return check_key(unquote(key_inside(self.root_uri, uri)))  # file URIs percent-encode '=' and more

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
        keys = [
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        ]
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


def default_artifact_root() -> Path:
    """``.artifacts`` in the project folder of a source checkout (where ``make demo`` writes), else in the
    working directory."""
    checkout = Path(__file__).resolve().parents[3]
    return (checkout if (checkout / "pyproject.toml").exists() else Path.cwd()) / ".artifacts"
