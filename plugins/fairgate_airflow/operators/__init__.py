"""One operator per stage, each a thin adapter over one ``fairgate`` domain call; one module per DAG.

- :mod:`.base`: what every operator shares (``Stage.run``: the policy once per task, errors by kind,
  the result published); ``check_routes``;
- :mod:`.lifecycle`: ``fairgate_lifecycle``'s stages, collect to record (and human review);
- :mod:`.scoring`: ``fairgate_score`` (``ScoreOperator``) and the review of a held or contested
  decision (``DecideContestOperator``, also ``fairgate_contest``'s);
- :mod:`.audit`: ``fairgate_audit`` (audit, alert, retraining request, the incidents' deadline sweep,
  the prediction log's retention);
- :mod:`.ingest`: ``fairgate_ingest`` (served decisions compacted and queued for review, the audit
  started when enough arrived);
- :mod:`.rollback`: ``fairgate_rollback``; :mod:`.tracking`: ``track_mlflow`` of every DAG above;
- :mod:`.refused`: the one task of a policy file's ``fairgate_policy_refused__<file>`` DAG.

The DAG wires the data: each stage's input is a templated field holding an upstream task's
``.output`` (an ``XComArg``), e.g. ``TrainModelOperator(bias=check_bias.output)``, so no operator
names another task and the data edges are the task edges. Branching operators get their routes
from the DAG; the domain returns outcomes.
"""

from __future__ import annotations

from fairgate_airflow.operators.audit import (
    AlertOperator,
    AuditOperator,
    IncidentDeadlinesOperator,
    RequestRetrainingOperator,
    RetentionOperator,
)
from fairgate_airflow.operators.base import SUMMARY, check_routes
from fairgate_airflow.operators.ingest import IngestDecisionsOperator, TriggerAuditOperator
from fairgate_airflow.operators.lifecycle import (
    CheckBiasOperator,
    CollectDataOperator,
    DeployModelOperator,
    FairnessGateOperator,
    FitCandidateOperator,
    HumanReviewOperator,
    PlanSearchOperator,
    RecordEvidenceOperator,
    RecordFailureOperator,
    RejectModelOperator,
    SelectCandidateOperator,
    TrainModelOperator,
    ValidateDataOperator,
)
from fairgate_airflow.operators.refused import PolicyRefusedOperator
from fairgate_airflow.operators.rollback import RollbackOperator
from fairgate_airflow.operators.scoring import DecideContestOperator, ScoreOperator
from fairgate_airflow.operators.tracking import TrackMlflowOperator

__all__ = [
    "SUMMARY",
    "AlertOperator",
    "AuditOperator",
    "CheckBiasOperator",
    "CollectDataOperator",
    "DecideContestOperator",
    "DeployModelOperator",
    "FairnessGateOperator",
    "FitCandidateOperator",
    "HumanReviewOperator",
    "IncidentDeadlinesOperator",
    "IngestDecisionsOperator",
    "PlanSearchOperator",
    "PolicyRefusedOperator",
    "RecordEvidenceOperator",
    "RecordFailureOperator",
    "RejectModelOperator",
    "RequestRetrainingOperator",
    "RetentionOperator",
    "RollbackOperator",
    "ScoreOperator",
    "SelectCandidateOperator",
    "TrackMlflowOperator",
    "TrainModelOperator",
    "TriggerAuditOperator",
    "ValidateDataOperator",
    "check_routes",
]
