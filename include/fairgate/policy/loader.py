"""Load the policy file that drives every lifecycle stage.

Validation happens once, on load (:mod:`fairgate.policy.schema` for every key, with
:mod:`fairgate.policy.rules` for the keys that must agree), and every error names the key path,
what was expected and what arrived, so a typo in ``policy.yaml`` stops a run before any data is
read. What is returned is the schema's :class:`~fairgate.policy.schema.Policy` itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fairgate.errors import FairgateError, PolicyError
from fairgate.policy import schema
from fairgate.policy.catalog import single_policy_path
from fairgate.policy.estimators import classifier
from fairgate.policy.reading import read_policy_yaml
from fairgate.policy.schema import Policy


def policy_path() -> Path:
    """The policy file in force: ``FAIRGATE_POLICY`` or the bundled default."""
    return single_policy_path()


def load_policy(path: str | Path | None = None, *, check_estimator: bool = True) -> Policy:
    """Read, validate and return the policy at ``path`` (default: :func:`policy_path`).

    Parameters
    ----------
    path
        A policy file (YAML); default: ``FAIRGATE_POLICY``, else the bundled policy.
    check_estimator
        False leaves out building the estimator to check ``model.params``, which imports
        scikit-learn (about 0.8 s in a new process): for a task of a run whose first task checked
        the same file, and that fits nothing itself.

    Returns
    -------
    Policy
        The validated policy, with the file's sha256 and text kept for the evidence.

    Raises
    ------
    PolicyError
        The file is missing, unreadable or invalid; the message names the file and the key.
    """
    path = Path(path) if path else policy_path()
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(f"Policy file {path} does not exist (set FAIRGATE_POLICY to its path).") from None
    raw = read_policy_yaml(text, source=path)  # bounded: size, depth, numbers, no aliases, no duplicate keys
    try:
        policy = parse_policy(raw, check_estimator=check_estimator)
    except FairgateError:
        raise
    except Exception as exc:  # anything else construction raised: named, never a traceback
        raise PolicyError(f"Policy file {path} cannot be used ({type(exc).__name__}: {str(exc)[:300]}).") from None
    policy._sha256, policy._path, policy._raw = hashlib.sha256(text).hexdigest(), str(path), raw
    policy._text = text
    return policy


def parse_policy(raw: Any, *, check_estimator: bool = True) -> Policy:
    """Validate a policy mapping (as read from YAML): the schema's keys and rules, then ``model.params``.

    Parameters
    ----------
    raw
        The mapping a policy file holds.
    check_estimator
        As in :func:`load_policy`.

    Returns
    -------
    Policy
        The validated policy (no file: no sha256).

    Raises
    ------
    PolicyError
        A key is unknown, missing or out of range; the message names it.
    """
    policy = schema.validate(raw)
    if check_estimator:  # model.params now, not at train time
        classifier(policy.model.estimator, policy.model.params, policy.model.seed)
    return policy
