"""The evidence record of a lifecycle run, typed, with a JSON round trip that loses nothing.

The evidence log (:mod:`fairgate.governance.evidence`) stores and hashes JSON; this module is how
the code reads and writes a lifecycle run's record: ``LifecycleRecord.from_json(entry.record)``
and ``record.to_json()``. Every section a consumer reads (the policy and data fingerprints, the
quality result, the model, the gate, the deployment, the pages) is a typed model, so mypy checks
each read; the metric tables (fairness, performance, comparison, importance, robustness,
recourse, calibration, search, bias, mitigation, review) stay JSON objects, as their writers in
:mod:`fairgate.fairness` and :mod:`fairgate.models` produce them.

The round trip is exact: ``from_json(d).to_json() == d`` for a record written by any release
(keys a release added later are optional here; keys this release does not know are kept as they
are), because a record's hash is over its JSON and a re-written record must verify.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from fairgate.errors import IntegrityError

JSONObject = dict[str, Any]  # a JSON object as stored: a metric table, a search result


class _Part(BaseModel):
    # extra="allow": keys of other releases survive the round trip; frozen: a record read is not edited
    model_config = ConfigDict(extra="allow", frozen=True)

    def to_json(self) -> JSONObject:
        """The JSON as stored: only the keys the record has (none added, none dropped)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def from_json(cls, data: Any, *, where: str = "evidence record") -> Self:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            named = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}" for e in exc.errors()[:3])
            raise IntegrityError(f"The {where} does not have the shape of a {cls.__name__}: {named}.") from None


class Ref(_Part):
    """A page or file the run wrote, with the sha256 it had."""

    uri: str
    sha256: str | None = None


class PolicyRef(_Part):
    sha256: str
    path: str = ""
    uri: str | None = None  # the policy file kept beside the run's artifacts
    kept: bool | None = None  # False (with a note) when it could not be kept
    note: str | None = None


class DataRef(_Part):
    rows: int
    sha256: str
    uri: str
    source: str | None = None
    period: list[str] | None = None


class QualityRef(_Part):
    passed: bool
    rows: int
    checks: int
    failed: int
    failures: list[str] = []
    uri: str | None = None
    html_uri: str | None = None
    page: Ref | None = None


class ModelRef(_Part):
    sha256: str
    uri: str
    version: str | None = None  # set when the model was registered
    weighted: bool = False
    estimator: str | None = None
    rows: dict[str, int] | None = None  # per split: train, validation, test
    group_aware: list[str] = []


class GateRef(_Part):
    outcome: Literal["pass", "fail", "review"]
    reasons: list[str] = []
    uri: str | None = None
    champion: JSONObject | None = None
    thresholds: JSONObject = {}
    measured_on: str | None = None


class DeploymentRef(_Part):
    version: str | None
    promoted: bool
    previous: str | None = None
    note: str = ""
    manifest_sha256: str | None = None  # records before deployment records: absent


class DatasheetRef(_Part):
    uri: str
    sha256: str | None = None
    json_uri: str | None = None
    json_sha256: str | None = None
    missing: list[str] = []


class FailureRef(_Part):
    """A stage that failed after the quality gate, and why (what its task raised)."""

    task: str
    error: str


class LifecycleRecord(_Part):
    """One lifecycle run's record (DESIGN §7): what it read, measured, decided and wrote."""

    kind: Literal["lifecycle"]  # required: written into every record, which readers select by kind
    run_id: str
    dag_id: str
    run_type: str | None = None
    decision: str
    model_name: str
    policy: PolicyRef
    failures: list[FailureRef] | None = None  # decision "failed": the stages that failed, and why
    code_version: str | None = None
    recorded_at: str | None = None  # set by the log when the record is appended
    data: DataRef | None = None
    quality: QualityRef | None = None
    bias: JSONObject | None = None
    mitigation: JSONObject | None = None
    search: JSONObject | None = None
    model: ModelRef | None = None
    performance: JSONObject | None = None
    fairness: JSONObject | None = None
    gate: GateRef | None = None
    comparison: JSONObject | None = None
    importance: JSONObject | None = None
    robustness: JSONObject | None = None
    recourse: JSONObject | None = None
    calibration: JSONObject | None = None
    subgroups: JSONObject | None = None  # subgroup discovery on the test split (fairgate.fairness.subgroups)
    shapley: JSONObject | None = None  # mean |Shapley value| per input on the test split (fairgate.models.shapley)
    review: JSONObject | None = None
    overrides: JSONObject | None = None  # a manual run's threshold override: what, from what, why, by whom
    deployment: DeploymentRef | None = None
    report: Ref | None = None
    model_card: Ref | None = None
    datasheet: DatasheetRef | None = None

    @property
    def version(self) -> str | None:
        """The registry version the run's model got (None when none was registered)."""
        return self.model.version if self.model else None

    @property
    def promoted(self) -> bool:
        return bool(self.deployment and self.deployment.promoted)

    @property
    def reviewer(self) -> str | None:
        return (self.review or {}).get("reviewer")

    def with_pages(self, **pages: Any) -> LifecycleRecord:
        """A copy with sections the recording step adds (``report``, ``model_card``, ``datasheet``, ``policy``).

        Built by validation, so a section added this way is typed and counts as set (it is written).
        """
        return LifecycleRecord.model_validate({**self.to_json(), **pages})
