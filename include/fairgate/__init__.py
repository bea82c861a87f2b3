"""Fairgate: a responsible-AI lifecycle for tabular models, independent of any orchestrator.

The names a notebook or a script needs are importable from the package itself (``__all__``; the
docs site's Python API page has an example). Each is loaded on first use (PEP 562), so
``import fairgate.errors``, or a DAG file that imports one module, pays for that module alone.
Everything else is reached through its package (``fairgate.fairness.metrics``,
``fairgate.governance.bundle``, ...; docs/architecture.md maps them).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name → the module that defines it
_FACE = {
    "load_policy": "fairgate.policy.loader",
    "parse_policy": "fairgate.policy.loader",
    "Policy": "fairgate.policy.schema",
    "open_store": "fairgate.storage.roots",
    "RunInfo": "fairgate.stages.lifecycle",
    "run_in_process": "fairgate.stages.lifecycle",
    "measure": "fairgate.fairness.metrics",
    "decide": "fairgate.fairness.gate",
    "verify_evidence": "fairgate.governance.evidence",
    "FairgateError": "fairgate.errors",
    "InputError": "fairgate.errors",
    "IntegrityError": "fairgate.errors",
    "TransientError": "fairgate.errors",
}
_RENAMED = {"verify_evidence": "verify"}  # a name that reads better beside the others than its own

__all__ = [
    "FairgateError",
    "InputError",
    "IntegrityError",
    "Policy",
    "RunInfo",
    "TransientError",
    "__version__",
    "decide",
    "load_policy",
    "measure",
    "open_store",
    "parse_policy",
    "run_in_process",
    "verify_evidence",
]

if TYPE_CHECKING:
    from fairgate.errors import FairgateError, InputError, IntegrityError, TransientError
    from fairgate.fairness.gate import decide
    from fairgate.fairness.metrics import measure
    from fairgate.governance.evidence import verify as verify_evidence
    from fairgate.policy.loader import load_policy, parse_policy
    from fairgate.policy.schema import Policy
    from fairgate.stages.lifecycle import RunInfo, run_in_process
    from fairgate.storage.roots import open_store


def __getattr__(name: str) -> Any:
    if name not in _FACE:
        raise AttributeError(f"module 'fairgate' has no attribute {name!r}")
    value = getattr(import_module(_FACE[name]), _RENAMED.get(name, name))
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACE])
