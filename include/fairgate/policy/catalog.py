"""Which models a deployment runs: one policy file per model.

``FAIRGATE_POLICIES`` names a folder of policy files (``*.yaml`` / ``*.yml``), one per model;
each gets its own lifecycle, scoring, audit and rollback DAGs with ids suffixed by the model
(``fairgate_lifecycle__credit``). Without it, the single policy ``FAIRGATE_POLICY`` (default:
the bundled Adult policy) runs alone: under the plain ids (``fairgate_lifecycle``) when it is the
bundled model, else under its model's ids, so that pointing ``FAIRGATE_POLICY`` at another model
never gives it the run history of the one before.

This module reads only each file's ``model_name`` and ``schedule`` (PyYAML, nothing heavy), so
DAG files may call it at parse time; the full validation happens when a task loads the policy.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fairgate import configuration
from fairgate.errors import CatalogError, PolicyError
from fairgate.policy.reading import read_policy_yaml
from fairgate.policy.schema import MODEL_NAME, ReviewPolicy, Schedule

log = logging.getLogger(__name__)

POLICIES_ENV = "FAIRGATE_POLICIES"
POLICY_ENV = "FAIRGATE_POLICY"
# The bundled policy: include/config/policy.yaml in a checkout, package data in a wheel.
DEFAULT_POLICY_PATH = Path(str(resources.files("fairgate.config").joinpath("policy.yaml")))
_NAME = re.compile(f"^{MODEL_NAME}$")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    single: bool  # the one policy of a single-model deployment: plain DAG ids
    schedule: dict[str, str] = field(default_factory=dict)
    review_quorum: int = 1  # review.quorum: the lifecycle DAG has one review task per approval needed

    def dag_id(self, base: str) -> str:
        return base if self.single and self.name == bundled_model_name() else f"{base}__{self.name}"


@functools.cache
def bundled_model_name() -> str:
    """The bundled policy's ``model_name`` (the one model whose DAGs have the plain ids)."""
    import yaml

    return str(yaml.safe_load(DEFAULT_POLICY_PATH.read_text())["model_name"])


def single_policy_path() -> Path:
    return Path(os.environ.get(POLICY_ENV) or DEFAULT_POLICY_PATH)


@dataclass(frozen=True)
class Refused:
    """A policy file of the folder that gives no model: where it is and why (the message a run would give)."""

    path: Path
    reason: str


def scan(
    *, strict: bool = False, folder: str | os.PathLike[str] | None = None
) -> tuple[list[ModelEntry], list[Refused]]:
    """Every model of this deployment and every policy file refused: the files of ``folder`` (default
    ``FAIRGATE_POLICIES``), else the single policy. A file that cannot be read is refused, not
    raised (so one broken file does not take the other models' DAGs down), unless ``strict`` or it
    is the single policy."""
    folder = str(folder) if folder is not None else configuration.value("policies")
    if not folder:
        files, single = [single_policy_path()], True
    else:
        root = Path(folder)
        if not root.is_dir():
            raise CatalogError(f"{POLICIES_ENV}={folder} is not a folder of policy files.")
        files, single = sorted([*root.glob("*.yaml"), *root.glob("*.yml")]), False
    out: dict[str, ModelEntry] = {}
    refused: list[Refused] = []
    for path in files:
        try:
            raw = read_policy_yaml(path.read_bytes(), source=path)  # bounded: one bad file cannot stall parsing
            name = raw.get("model_name") if isinstance(raw, dict) else None
            if not isinstance(name, str) or not _NAME.match(name):
                raise CatalogError(
                    f"Policy key 'model_name' in {path} must be letters, digits, '-' or '_'. Got {name!r}."
                )
            if name in out:
                raise CatalogError(f"Policy files {out[name].path} and {path} both name model {name!r}.")
            schedule = _schedule(raw.get("schedule") if isinstance(raw.get("schedule"), dict) else {})
            quorum = _quorum(raw.get("review"))
        except Exception as exc:  # any failure of one file refuses that file alone, never the folder's other models
            if not isinstance(exc, OSError | PolicyError | CatalogError):
                exc = CatalogError(f"Policy file {path} cannot be read ({type(exc).__name__}: {str(exc)[:200]}).")
            if strict or single:
                raise CatalogError(str(exc)) from None
            log.error("Skipping policy file %s: %s", path, exc)
            refused.append(Refused(path=path, reason=str(exc)))
            continue
        out[name] = ModelEntry(name=name, path=path, single=single, schedule=schedule, review_quorum=quorum)
    return list(out.values()), refused


def entries(*, strict: bool = False, folder: str | os.PathLike[str] | None = None) -> list[ModelEntry]:
    """The models of :func:`scan` (the refused files are logged and left out)."""
    return scan(strict=strict, folder=folder)[0]


def _quorum(review: Any) -> int:
    """The policy's ``review.quorum`` (the schema's bounds checked here too: it shapes the DAG)."""
    given = review.get("quorum", 1) if isinstance(review, dict) else 1
    bounds = ReviewPolicy.model_fields["quorum"].metadata
    low = next(m.ge for m in bounds if hasattr(m, "ge"))
    high = next(m.le for m in bounds if hasattr(m, "le"))
    if not isinstance(given, int) or isinstance(given, bool) or not low <= given <= high:
        raise CatalogError(f"Policy key 'review.quorum' must be a whole number from {low} to {high}. Got {given!r}.")
    return given


def _schedule(given: dict[str, Any]) -> dict[str, str]:
    """The policy's ``schedule`` with the schema's defaults, each cron checked (a bad one skips this model's
    DAGs with the error logged, rather than failing every model's DAG file at parse time)."""
    from pydantic import ValidationError

    defaults: dict[str, str] = Schedule().model_dump()
    try:
        return Schedule.model_validate({**defaults, **{k: v for k, v in given.items() if k in defaults}}).model_dump()
    except ValidationError as exc:
        error = exc.errors()[0]
        raise CatalogError(str(error.get("ctx", {}).get("error") or error["msg"])) from None


def dag_id_of(model: str, base: str) -> str:
    """The id of ``model``'s DAG ``base`` in this deployment (a model it does not list: the suffixed id)."""
    for entry in entries():
        if entry.name == model:
            return entry.dag_id(base)
    return f"{base}__{model}"


def find(model: str | None) -> ModelEntry:
    """The model named ``model``; with None, the only one (several: an error listing them)."""
    known = entries(strict=True)
    if model is None:
        if len(known) == 1:
            return known[0]
        raise CatalogError(
            f"This deployment has {len(known)} models; choose one with --model: {[e.name for e in known]}."
        )
    for e in known:
        if e.name == model:
            return e
    raise CatalogError(f"No model {model!r}; the models are {[e.name for e in known]}.")
