"""The evidence key, and the MACs made with it: one label per kind of thing signed.

The key (``FAIRGATE_EVIDENCE_KEY``, or in Airflow the password of the connection
``fairgate_evidence``) is held outside the store. A MAC says "someone holding the key wrote this",
so a writer to the store without it cannot forge what is signed. Each kind of thing is signed under
its own label, so a MAC of one kind never checks as another (a record's MAC is not a HEAD's).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

HEAD = "fairgate-head-v2"  # a chain's HEAD: model, sequence of the head, record seq, hash
RECORD = "fairgate-record"  # one evidence record: model, seq, hash
SERVED_PART = "fairgate-served-part"  # one request's served decisions: model, day, sha256
SERVED_LOSS = "fairgate-served-loss"  # a count of decisions answered but not logged: model, day, sha256
COMPACTED = "fairgate-compacted"  # a day's compacted served decisions: model, day, sha256


def _key_from_env() -> bytes | None:
    key = os.environ.get("FAIRGATE_EVIDENCE_KEY")
    return key.encode() if key else None


_source: Callable[[], bytes | None] = _key_from_env


def use_key(source: Callable[[], bytes | None]) -> None:
    """Where the evidence key comes from (Airflow's tasks: a connection; default: ``FAIRGATE_EVIDENCE_KEY``)."""
    global _source
    _source = source


def key() -> bytes | None:
    """The evidence key, or None when none is set."""
    return _source()


def mac(secret: bytes, label: str, *fields: object) -> str:
    """HMAC-SHA256 of ``label`` and ``fields``, one per line, under ``secret``."""
    return hmac.new(secret, "\n".join([label, *map(str, fields)]).encode(), hashlib.sha256).hexdigest()


def checks(secret: bytes, given: object, label: str, *fields: object, length: int = 64) -> bool:
    """Whether ``given`` is the MAC of ``label`` and ``fields``, its first ``length`` hex digits exactly
    (a shorter string never checks), compared in constant time."""
    return (
        isinstance(given, str)
        and len(given) == length
        and hmac.compare_digest(given, mac(secret, label, *fields)[:length])
    )
