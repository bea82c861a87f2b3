"""Shared pieces of the end-to-end DAG tests: the parsed DAGs, a runner, and a deployed store."""

from __future__ import annotations

import json

import pytest

from fairgate.governance import evidence

DAG_ID = "fairgate_lifecycle"
LOOSE = {
    "disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20.0},
    "statistical_parity_difference": {"kind": "abs_difference", "max": 0.9},
    "equal_opportunity_difference": {"kind": "abs_difference", "max": 0.9},
    "average_odds_difference": {"kind": "abs_difference", "max": 0.9},
}


# The DAGs every model gets (each id suffixed with the model's name when a deployment lists models).
DAG_BASES = (
    "fairgate_lifecycle",
    "fairgate_score",
    "fairgate_ingest",
    "fairgate_audit",
    "fairgate_rollback",
    "fairgate_contest",
)


@pytest.fixture(scope="session")
def lifecycle_dag():
    from fairgate_dev.local import init_db, load_dag

    init_db()
    return load_dag(DAG_ID)


def run_dag(dag, *, review: tuple[str, str] | None = None):
    from fairgate_dev.local import Reviewer

    reviewer = Reviewer(DAG_ID, *review, timeout_s=300) if review else None
    if reviewer:
        reviewer.start()
    dr = dag.test()
    if reviewer:
        reviewer.stop()
        reviewer.join(5)
        assert reviewer.answered, f"the review was never answered (last error: {reviewer.error!r})"
        dr.review_request = reviewer.request
    return dr


def record_of(store, dr):
    entry = evidence.find(store, "adult_income", dr.run_id)
    assert entry is not None, f"no evidence for {dr.run_id}"
    return entry["record"]


def file_of(store, uri):
    return store.get(store.key_of(uri))


@pytest.fixture(scope="session")
def deployed(lifecycle_dag, tmp_path_factory):
    """A store in which a run has deployed a model under loose thresholds."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("deployed") / "artifacts"
    policy_path = root.parent / "policy.yaml"
    from tests.conftest import default_policy_dict

    raw = default_policy_dict()
    raw["fairness"]["thresholds"] = LOOSE
    policy_path.write_text(json.dumps(raw))
    mp.setenv("FAIRGATE_ARTIFACT_ROOT", str(root))
    mp.setenv("FAIRGATE_POLICY", str(policy_path))
    dr = run_dag(lifecycle_dag)
    mp.undo()
    return root, policy_path, dr
