"""A running server that follows production: when the store's pointer moves (a deployment or a
rollback), the server swaps to the version it names, without a restart and without a failed request.

Every ``every`` seconds a thread reads the production pointer (one small object; its etag says
whether it changed, so an unchanged pointer costs one read). When it names another version, that
version is checked as at server start — :func:`fairgate.governance.approval.production` (the
verified evidence chain put it there and binds every file it serves from) — and loaded from those
files by :func:`load_approved`. Only then is the served version replaced, in one assignment: a request holds the version
it started with until it is answered, and each answer names the version that made it. A version
that fails any check is not served; the server keeps the one it has and says why in its log.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from fairgate.errors import InputError
from fairgate.governance import approval, registry
from fairgate.integrations import serving
from fairgate.policy.loader import load_policy

if TYPE_CHECKING:
    from fairgate.storage.base import ArtifactStore

log = logging.getLogger(__name__)


def load_approved(
    store: ArtifactStore, model: str, workdir: Path, approved: approval.Approved | None = None
) -> serving.Served:
    """The production version of ``model`` (what :func:`fairgate.governance.approval.production` approves),
    its server files written into a new folder under ``workdir`` from the files its promotion record binds
    (the policy file read and checked by its sha256; the manifest, model and training rows checked by the
    same rule), and loaded. Nothing of another copy (MLflow's, a folder on disk) is served."""
    approved = approved if approved is not None else approval.production(store, model)
    if approved is None:
        raise InputError(f"Nothing of {model!r} is in production; there is nothing to serve.")
    workdir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{approved.version[:12]}-", dir=workdir))
    recorded = approval.read_bound(store, approved, approval.POLICY)
    (folder / "policy.yaml").write_bytes(recorded)
    policy = load_policy(folder / "policy.yaml")
    serving.write_bundle(store, policy, approved.version, folder, policy_file=recorded)
    files = {p.name: str(p) for p in folder.iterdir()}
    return serving.load(files, version=approved.version)


class Follower:
    """The served version, kept equal to what the evidence approves for production of ``model``."""

    def __init__(self, served: serving.Served, store: ArtifactStore, model: str, *, workdir: Path) -> None:
        self.served = served
        self.store = store
        self.model = model
        self.workdir = workdir
        self.swaps: list[str] = []  # versions swapped to, in order
        self._etag: str | None = None
        self._refused: str | None = None  # the pointer and reason last refused (said once in the log)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Look at the pointer once; swap when it names another approved version. True when swapped.

        A production the evidence refuses (or a version that fails a check while loading) is not
        served: the server keeps the version it has and says why in its log, once per pointer.
        """
        _, etag = registry.read_pointer(self.store, self.model)
        if etag is not None and etag == self._etag:
            return False
        try:
            approved = approval.production(self.store, self.model)
            if approved is None or approved.version == self.served.version:
                self._etag = etag
                return False
            new = load_approved(self.store, self.model, self.workdir, approved)
        except Exception as exc:
            said = f"{etag}:{exc}"
            if self._refused != said:
                log.error(
                    "Production of %s is not served (%s); still serving %s", self.model, exc, self.served.version[:12]
                )
                self._refused = said
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
