"""A full disk during a deployment: production stays as it was and nothing half-written is visible.

The store is a real 1 MiB tmpfs filled to within ``free`` bytes, so the write that fails is
whichever the free space runs out at (the record, HEAD, the pointer or its history). Mounting
needs root, as on CI; elsewhere the test is skipped saying so.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from fairgate.governance import approval, evidence, registry
from fairgate.storage.local import LocalStore

pytestmark = pytest.mark.integration
M = "m"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def _fill(disk: Path, free: int) -> Path:
    """Write a filler file until the disk is full, then give back ``free`` bytes (whole pages)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - free))
    return filler


def _deploy(store, version, run_id, replaces):
    return approval.deploy_recorded(
        store, M, version, run_id=run_id, dag_id="lc", gate_outcome="pass", replaces=replaces, approver="gate"
    )


def test_a_deployment_on_a_full_disk_leaves_production_unchanged_and_its_retry_finishes_it(small_disk):
    store = LocalStore(small_disk / "artifacts")
    manifest = {"approved": True, "gate_outcome": "pass", "registered_at": "t"}
    a = registry.register(store, M, b"model-a", manifest)["version"]
    b = registry.register(store, M, b"model-b", manifest)["version"]
    _deploy(store, a, "r1", None)

    outcomes = []
    for free in range(0, 64 * 1024, 4096):  # from nothing free to enough for the whole deployment
        filler = _fill(small_disk, free)
        try:
            _deploy(store, b, "r2", a)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            outcomes.append("failed")
            # the cause reached the caller; production is still the old champion, approved by its record
            assert approval.production(store, M).version == a
            assert evidence.verify(store, M).intact_to_head
            assert not [p for p in store.list("") if Path(p).name.startswith(".")]  # no temporary file left
        else:
            outcomes.append("deployed")
        finally:
            filler.unlink()
        if outcomes[-1] == "deployed":
            break
    assert outcomes[0] == "failed" and outcomes[-1] == "deployed", outcomes

    found = approval.production(store, M)
    assert (found.version, found.run_id) == (b, "r2")
    assert evidence.verify(store, M).ok
    records = [e["record"] for e in evidence.entries(store, M)]
    assert [(r["kind"], r["run_id"]) for r in records] == [("deployment", "r1"), ("deployment", "r2")]
    pointer = registry.read_pointer(store, M)[0]
    assert [h["version"] for h in pointer["history"]] == [a]
