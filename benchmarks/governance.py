"""Cost of the governance pieces: release bundles (build and offline verification) against the length
of the evidence log, and the robustness checks against the rest of the gate.

One lifecycle run on the bundled Adult data (loose thresholds, so it deploys) in a throw-away
store, then a year of nightly audit records appended to its evidence chain (each a real audit
record shape, ~1 KB), so the bundle's chain proof spans 1 + N records.

    python benchmarks/governance.py [AUDIT_RECORDS ...]     default: 0 365 3650
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LOOSE = {
    "disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20.0},
    "statistical_parity_difference": {"kind": "abs_difference", "max": 0.9},
    "equal_opportunity_difference": {"kind": "abs_difference", "max": 0.9},
    "average_odds_difference": {"kind": "abs_difference", "max": 0.9},
}


def _policy(tmp: Path, robustness: bool) -> Path:
    raw = yaml.safe_load((REPO / "include" / "config" / "policy.yaml").read_text())
    raw.pop("mitigation", None)
    raw["fairness"]["thresholds"] = LOOSE
    raw["robustness"] = {"enabled": robustness}
    path = tmp / f"policy-{robustness}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def main(argv: list[str]) -> int:
    from fairgate.governance import bundle, evidence
    from fairgate.policy.loader import load_policy
    from fairgate.stages import lifecycle
    from fairgate.stages.lifecycle import RunInfo
    from fairgate.storage.local import LocalStore

    sizes = [int(a) for a in argv] or [0, 365, 3650]
    tmp = Path(tempfile.mkdtemp(prefix="fairgate-bench-"))
    print("Robustness checks (Adult, test split 6,033 rows, logistic regression):")
    for enabled in (False, True):
        store = LocalStore(tmp / f"gate-{enabled}")
        policy = load_policy(_policy(tmp, enabled))
        run = RunInfo(dag_id="bench", run_id="r")
        snapshot = lifecycle.collect(store, policy, run)
        bias = lifecycle.check_bias(store, policy, run, lifecycle.validate(store, policy, run, snapshot))
        plan = lifecycle.search_plan(store, policy, run, bias)
        trained = lifecycle.select_candidate(
            store, policy, run, bias, [lifecycle.fit_candidate(store, policy, run, bias, p["candidate"]) for p in plan]
        )
        t0 = time.perf_counter()
        lifecycle.evaluate(store, policy, run, trained)
        print(f"  fairness_gate stage {'with' if enabled else 'without'} robustness: {time.perf_counter() - t0:6.2f} s")

    store = LocalStore(tmp / "store")
    policy = load_policy(_policy(tmp, False))
    lifecycle.run_in_process(store, policy, RunInfo(dag_id="bench", run_id="release"))
    version = evidence.find(store, policy.model_name, "release")["record"]["model"]["version"]
    print("\nRelease bundle (model file included), by evidence records after the release:")
    print(f"  {'records':>8} {'build s':>8} {'verify s':>9} {'bundle MB':>10}")
    appended = 0
    for n in sizes:
        for i in range(appended, n):
            evidence.append(
                store,
                policy.model_name,
                {
                    "kind": "audit",
                    "run_id": f"audit-{i}",
                    "date": f"day-{i:05d}",
                    "status": "healthy",
                    "reasons": [],
                    "judged_version": version,
                    "model_versions": [version],
                    "policy_sha256": policy.sha256,
                    "code_version": "bench",
                    "audit_uri": None,
                    "audit_sha256": None,
                },
            )
        appended = max(appended, n)
        t0 = time.perf_counter()
        data = bundle.build(store, policy.model_name, version)
        t1 = time.perf_counter()
        check = bundle.verify(data)
        t2 = time.perf_counter()
        assert check.ok, check.problems
        print(f"  {1 + n:>8} {t1 - t0:>8.2f} {t2 - t1:>9.2f} {len(data) / 1e6:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
