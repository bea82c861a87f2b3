"""A deployment or an evidence append in a process that SIGKILLs itself at one step.

Run by ``test_deployment_integrity.py``: ``python -m tests.integration.killed <store> <step> <what>``
where ``<store>`` is a folder or ``s3://bucket/prefix@http://endpoint``, ``<step>`` one of
:data:`STEPS` and ``<what>`` ``deploy`` or ``append``. The store's own methods are wrapped so the
process dies right after the named write returns: nothing is mocked, the write really happened.
"""

from __future__ import annotations

import os
import signal
import sys

STEPS = {
    "record-written": ("put_new", "/records/"),  # the evidence record is stored, HEAD not yet moved
    "head-moved": ("swap", "/HEAD.json"),  # the record is in the chain, the pointer not yet moved
    "pointer-moved": ("swap", "/production.json"),  # production moved, the task not yet returned
}


def open_store(spec: str):
    if spec.startswith("s3://"):
        import boto3
        from botocore.config import Config

        from fairgate.storage.s3 import S3Store

        root, endpoint = spec.split("@", 1)
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(s3={"addressing_style": "path"})
        )
        return S3Store(root, client=client)
    from fairgate.storage.local import LocalStore

    return LocalStore(spec)


def die_after(store, method: str, fragment: str) -> None:
    original = getattr(store, method)

    def wrapped(key, *args, **kwargs):
        out = original(key, *args, **kwargs)
        if fragment in key:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(store, method, wrapped)


def main(spec: str, step: str, what: str, version: str, replaces: str) -> None:
    from fairgate.governance import approval, evidence

    store = open_store(spec)
    die_after(store, *STEPS[step])
    if what == "deploy":
        approval.deploy_recorded(
            store, "m", version, run_id="r2", dag_id="lc", gate_outcome="pass", replaces=replaces, approver="gate"
        )
    else:
        evidence.append(store, "m", {"kind": "lifecycle", "run_id": "r2"}, key="lc/r2/lifecycle/deployed")


if __name__ == "__main__":
    main(*sys.argv[1:])
