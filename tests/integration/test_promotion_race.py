"""Racing promotions: the champion comparison is part of the swap.

Two lifecycle runs are gated while the same champion is in production; the first to deploy wins,
the second is refused (it compared against a champion that is gone) and deploys only after it is
gated again, against the new champion, which its record then names as the one it replaced.
"""

from __future__ import annotations

import pytest
from tests.support.policies import synthetic_credit_policy

from fairgate.errors import PromotionConflict
from fairgate.governance import approval, evidence, registry
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle

pytestmark = pytest.mark.integration
NO_BIAS_CHECK = {"thresholds": {"disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20.0}}}


def _gate(store, policy, run_id):
    run = lifecycle.RunInfo(dag_id="credit_lifecycle", run_id=run_id)
    quality = lifecycle.validate(store, policy, run, lifecycle.collect(store, policy, run))
    return run, lifecycle.evaluate(
        store, policy, run, lifecycle.train(store, policy, run, lifecycle.check_bias(store, policy, run, quality))
    )


def test_the_second_of_two_runs_gated_against_the_same_champion_is_refused_and_regated(store, tmp_path):
    path, _ = synthetic_credit_policy(tmp_path, 3000, seed=5, model={"seed": 1}, bias=NO_BIAS_CHECK)
    policy = load_policy(path)
    run1, gate1 = _gate(store, policy, "r1")
    path2, _ = synthetic_credit_policy(tmp_path, 3000, seed=5, model={"seed": 2, "test_size": 0.25}, bias=NO_BIAS_CHECK)
    policy2 = load_policy(path2)
    run2, gate2 = _gate(store, policy2, "r2")
    assert gate1.outcome == gate2.outcome == "pass" and gate1.champion is None and gate2.champion is None
    assert gate1.trained.model.sha256 != gate2.trained.model.sha256  # two different candidates

    first = lifecycle.deploy(store, policy, run1, gate1)
    with pytest.raises(PromotionConflict, match=r"the gate compared this candidate against nothing"):
        lifecycle.deploy(store, policy2, run2, gate2)
    assert registry.production_version(store, policy.model_name) == first.version
    deployments = [
        e["record"] for e in evidence.entries(store, policy.model_name) if e["record"]["kind"] == "deployment"
    ]
    assert [d["run_id"] for d in deployments] == ["r1"]  # the refused run wrote no deployment record

    run3, gate3 = _gate(store, policy2, "r3")  # gated again: against the new champion
    assert gate3.champion == first.version
    third = lifecycle.deploy(store, policy2, run3, gate3)
    assert third.previous == first.version and approval.production(store, policy.model_name).version == third.version
    record = evidence.find(store, policy.model_name, kind="deployment")["record"]
    assert (record["run_id"], record["replaces"]) == ("r3", first.version)
