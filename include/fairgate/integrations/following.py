"""A running server that follows production: when the store's pointer moves (a deployment or a
rollback), the server swaps to the version it names, without a restart and without a failed request.

Every ``every`` seconds a thread reads the production pointer (one small object; its etag says
whether it changed, so an unchanged pointer costs one read). When it names another version, that
version is checked as at server start — :func:`fairgate.governance.approval.production` (the
verified evidence chain put it there) — its files are written from the store
(:func:`fairgate.integrations.serving.write_bundle`, the policy file its lifecycle run recorded), and
loaded by :func:`fairgate.integrations.serving.load`, which loads the model only if its sha256 is the
version. Only then is the served version replaced, in one assignment: a request holds the version
it started with until it is answered, and each answer names the version that made it. A version
that fails any check is not served; the server keeps the one it has and says why in its log.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from fairgate.governance import approval, evidence, registry
from fairgate.integrations import serving
from fairgate.storage.base import read_recorded, verify

if TYPE_CHECKING:
    from fairgate.storage.base import ArtifactStore

log = logging.getLogger(__name__)


def policy_file(store: ArtifactStore, model: str, version: str) -> bytes | None:
    """The policy file ``version``'s lifecycle run recorded (sha256-checked), or None when not found."""
    run_id = registry.read_manifest(store, model, version).get("run_id")
    entry = evidence.find(store, model, str(run_id), kind="lifecycle") if run_id else None
    ref = (entry["record"].get("policy") if entry else None) or {}
    data = read_recorded(store, ref["uri"]) if ref.get("uri") else None
    if data is not None and ref.get("sha256"):
        data = verify(data, ref["sha256"], where=f"policy file of {model} version {version[:12]}")
    return data


def load_from_store(
    store: ArtifactStore, model: str, version: str, current: serving.Served, workdir: Path
) -> serving.Served:
    """``version``'s files written from the store into ``workdir`` and loaded (sha256-checked)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{version[:12]}-", dir=workdir))
    recorded = policy_file(store, model, version)
    serving.write_bundle(
        store,
        current.policy,
        version,
        folder,
        policy_file=recorded if recorded is not None else Path(current.policy.path).read_bytes(),
    )
    files = {p.name: str(p) for p in folder.iterdir()}
    return serving.load(files, version=version)


class Follower:
    """The served version, kept equal to what the evidence approves for production of ``model``."""

    def __init__(self, served: serving.Served, store: ArtifactStore, model: str, *, workdir: Path) -> None:
        self.served = served
        self.store = store
        self.model = model
        self.workdir = workdir
        self.swaps: list[str] = []  # versions swapped to, in order
        self._etag: str | None = None
        self._refused: str | None = None  # the version last refused (said once in the log)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Look at the pointer once; swap when it names another approved version. True when swapped."""
        _, etag = registry.read_pointer(self.store, self.model)
        if etag is not None and etag == self._etag:
            return False
        approved = approval.production(self.store, self.model)
        if approved is None or approved.version == self.served.version:
            self._etag = etag
            return False
        try:
            new = load_from_store(self.store, self.model, approved.version, self.served, self.workdir)
        except Exception as exc:
            if self._refused != approved.version:
                log.error(
                    "Production of %s moved to %s, which is not served (%s); still serving %s",
                    self.model,
                    approved.version[:12],
                    exc,
                    self.served.version[:12],
                )
                self._refused = approved.version
            return False
        old, self.served = self.served, new  # one assignment: a request in flight keeps the version it holds
        self._etag = etag
        self.swaps.append(new.version)
        log.warning("Production of %s moved: now serving %s (was %s)", self.model, new.version[:12], old.version[:12])
        return True

    def start(self, every: float) -> None:
        """Check every ``every`` seconds in a daemon thread (errors logged, never raised into requests)."""

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    self.check()
                except Exception:
                    log.exception(
                        "Checking the production pointer of %s failed; still serving %s",
                        self.model,
                        self.served.version[:12],
                    )

        self._thread = threading.Thread(target=loop, name=f"fairgate-follow-{self.model}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
