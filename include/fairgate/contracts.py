"""What each lifecycle stage hands the next: small, frozen, typed results with a JSON round trip.

A stage's result carries headline figures and references to the artifacts it stored (key, URI,
sha256), never rows or frames: the full evidence lives in the artifact store, and a result is
what travels through XCom. ``to_json()`` gives a JSON-safe dict; ``from_json()`` validates one
(pydantic), so a value wired from the wrong task fails with the field named instead of being
read with ``.get(...)`` and a silent default.

Each result carries the results it was built from (a trained model its bias check and
mitigation, a gate result its trained model, a deployment its gate result and review), so a
stage needs only its immediate input, the DAG's data edges are its task edges, and the evidence
record can be assembled from the last result of a run. An optional stage that did not run is
explicit: :meth:`Mitigation.not_applied` says why. What a run concludes is computed from the
results by :func:`fairgate.stages.lifecycle.conclude`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, Self, TypeVar

from fairgate.errors import InputError

GateOutcome = Literal["pass", "fail", "review"]
AuditStatus = Literal["healthy", "degraded", "insufficient_evidence"]
Decision = Literal["deployed", "approved_not_promoted", "rejected", "quality_failed", "awaiting_review", "failed"]

T = TypeVar("T", bound="_Result")


@cache
def _adapter(cls: type) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(cls)


class _Result:
    """JSON round trip shared by every stage result."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = _adapter(type(self)).dump_python(self, mode="json")  # type: ignore[arg-type]  # classes are hashable; typeshed says cache keys must be Hashable instances
        return out

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """Validate ``data`` (a dict from XCom, or already a result) as this result type."""
        if isinstance(data, cls):
            return data
        from pydantic import ValidationError

        try:
            value: Self = _adapter(cls).validate_python(data)  # type: ignore[arg-type]  # as above
        except ValidationError as exc:
            errors = exc.errors()
            named = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}" for e in errors[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise InputError(f"Expected a {cls.__name__} result from the upstream stage: {named}{more}.") from None
        return value


@dataclass(frozen=True)
class Artifact(_Result):
    """A file in the artifact store, with the sha256 it must still have when read back."""

    key: str
    uri: str
    sha256: str


@dataclass(frozen=True)
class Snapshot(_Result):
    """The run's data: the policy's columns of the source rows, as Parquet."""

    data: Artifact
    rows: int
    columns: tuple[str, ...]
    source: str
    duplicate_rows: int  # counted on the source's whole rows, before the snapshot kept the policy's columns
    period: tuple[str, str] | None = None


@dataclass(frozen=True)
class Quality(_Result):
    passed: bool
    rows: int
    checks: int
    failed: int
    failures: tuple[str, ...]  # capped and sorted; the stored result has them all
    failures_not_shown: int
    result: Artifact
    page: Artifact
    snapshot: Snapshot


@dataclass(frozen=True)
class Bias(_Result):
    """Disparity in the training rows; the per-comparison figures and the proxy check are in ``result``.

    ``split`` (train / validation / test per snapshot row) is made here, before any mitigation.
    """

    detected: bool
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    measured_on: str
    result: Artifact
    split: Artifact
    quality: Quality
    short_of_evidence: tuple[str, ...] = ()  # groups the test split is too small for: the gate can only ask review


@dataclass(frozen=True)
class Mitigation(_Result):
    applied: bool
    reason: str
    method: str | None = None
    weights: Artifact | None = None
    result: Artifact | None = None  # the figures after mitigation
    max_abs_di_error: float | None = None

    @classmethod
    def not_applied(cls, reason: str) -> Mitigation:
        return cls(applied=False, reason=reason)


@dataclass(frozen=True)
class CandidateResult(_Result):
    """One candidate of the mitigation search, fitted on the training rows and measured on the validation rows.

    ``band_gap`` is how far its validation intervals lie outside the gate's bands (0: inside every
    band; None: not measurable, e.g. a group short of evidence). A candidate that could not be
    fitted has ``status="failed"`` and the library's message in ``error``.
    """

    id: str
    name: str
    method: str
    estimator: str
    params: dict[str, Any]
    status: Literal["fitted", "failed"]
    group_aware: bool = False
    error: str | None = None
    model: Artifact | None = None
    weights: Artifact | None = None
    result: Artifact | None = None  # validation performance and fairness with intervals
    balanced_accuracy: float | None = None
    band_gap: float | None = None
    fit_s: float = 0.0


@dataclass(frozen=True)
class TrainedModel(_Result):
    model: Artifact
    split: Artifact
    weighted: bool
    estimator: str
    rows: dict[str, int]
    validation: dict[str, float | None]
    result: Artifact  # features, the typical record for reason codes
    bias: Bias
    mitigation: Mitigation  # Mitigation.not_applied(...) when the bias check found nothing to mitigate
    unmitigated: Artifact | None = None
    search: Artifact | None = None  # every candidate of the mitigation search and the choice, when one ran
    group_aware: tuple[str, ...] = ()  # protected columns the model uses when it decides


@dataclass(frozen=True)
class GateResult(_Result):
    outcome: GateOutcome
    reasons: tuple[str, ...]
    balanced_accuracy: float | None
    result: Artifact  # every metric with its interval, the comparison, importance
    trained: TrainedModel
    champion: str | None = None  # the production version the candidate was compared against


@dataclass(frozen=True)
class Review(_Result):
    """A review's answer; for a panel (``review.quorum`` above 1), the answers so far taken together:
    ``approved`` once every approval needed has counted, ``approvals`` the people whose approval did,
    ``panel`` every answer in order (each as this class's JSON, without its own panel)."""

    choice: str | None
    approved: bool
    rationale: str
    reviewer: str | None
    timed_out: bool
    note: str = ""
    responded_at: str | None = None
    approvals: tuple[str, ...] = ()
    needed: int = 1
    panel: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Deployment(_Result):
    """What became of the candidate: registered and promoted, registered only (backfill), or rejected."""

    version: str | None  # None when rejected
    promoted: bool
    previous: str | None  # production before this run
    gate: GateResult
    review: Review | None = None
    note: str = ""
    manifest_sha256: str | None = None  # of the registered version's manifest, bound by the deployment record


@dataclass(frozen=True)
class Recorded(_Result):
    """The run's evidence record, once appended to the log."""

    seq: int
    hash: str
    decision: Decision
    report: Artifact
    model_card: Artifact | None = None


@dataclass(frozen=True)
class Audit(_Result):
    date: str
    status: AuditStatus
    reasons: tuple[str, ...]
    insufficient: tuple[str, ...]
    rows: int
    labeled_rows: int
    run_type: str
    result: Artifact
    report: Artifact
    seq: int
    judged_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    incidents: tuple[str, ...] = ()  # the incidents this audit opened (fairgate.governance.incidents)


@dataclass(frozen=True)
class RolledBack(_Result):
    """Production pointed back to an earlier approved version, and the evidence record that says so."""

    model_name: str
    run_id: str
    from_version: str
    to_version: str
    actor: str
    reason: str
    since: str
    seq: int
    dag_id: str | None = None
    kind: Literal["rollback"] = "rollback"
    decision: Literal["rolled_back"] = "rolled_back"


@dataclass(frozen=True)
class Tracked(_Result):
    """What the tracking stage did: logged to MLflow (and what it wrote), or not logged and why."""

    logged: bool
    error: str | None = None
    runs: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    audits: int = 0
    alias: str | None = None
    tracking_uri: str | None = None


def optional(cls: type[T], data: Any) -> T | None:
    """``cls.from_json(data)``, or None when the stage that produces it was skipped."""
    return None if data is None else cls.from_json(data)
