"""Policies the tests start from: the bundled one, synthetic credit data with a policy written by
``fairgate policy init``, loose gate thresholds, and a policy with a few keys changed."""

from __future__ import annotations

from pathlib import Path

import yaml

from fairgate_dev.local import REPO

LOOSE = {
    "disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20.0},
    "statistical_parity_difference": {"kind": "abs_difference", "max": 0.9},
    "equal_opportunity_difference": {"kind": "abs_difference", "max": 0.9},
    "average_odds_difference": {"kind": "abs_difference", "max": 0.9},
}


DEFAULT_POLICY = REPO / "include" / "config" / "policy.yaml"


def default_policy_dict(*, search: bool = False) -> dict:
    """The bundled policy. Without ``search``, its mitigation search is left at the schema's default
    (reweighing only), which keeps each lifecycle run fast; tests/dags/test_search_e2e.py runs the
    shipped search."""
    raw = yaml.safe_load(DEFAULT_POLICY.read_text())
    if not search:
        raw.pop("mitigation", None)
    return raw


DELETE = object()


def synthetic_credit_policy(folder: Path, rows: int, *, seed: int, **sections) -> tuple[Path, object]:
    """Synthetic credit data (known disparity and proxy) in ``folder`` and a policy for it written by
    ``fairgate policy init``, with loose gate thresholds and ``sections`` merged in; the path and the data."""
    from fairgate.cli.main import main
    from fairgate_dev.synthetic import credit_applications

    data = credit_applications(rows, seed=seed)
    data.to_csv(folder / "credit.csv", index=False)
    path = folder / "credit.yaml"
    assert (
        main(
            [
                "policy",
                "init",
                "--source",
                str(folder / "credit.csv"),
                "--label",
                "approved",
                "--favorable",
                "1",
                "--protected",
                "gender=male",
                "--model-name",
                "credit",
                "--out",
                str(path),
            ]
        )
        == 0
    )
    raw = yaml.safe_load(path.read_text())
    raw["fairness"]["thresholds"] = LOOSE
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    path.write_text(yaml.safe_dump(raw))
    return path, data


def edited(policy, changes: dict):
    """``policy`` with the dotted keys in ``changes`` set (``{"sampling.max_rows": 0}``), validated again."""
    from fairgate.policy.loader import parse_policy

    raw = policy.model_dump()
    for key, value in changes.items():
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node[part]
        node[last] = value
    return parse_policy(raw)


AUDIT_POLICY = {
    # the bounds the deployed model is audited against: loose on DI/SPD, meaningful on error rates
    "fairness": {
        "disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20.0},
        "statistical_parity_difference": {"kind": "abs_difference", "max": 0.9},
        "equal_opportunity_difference": {"kind": "abs_difference", "max": 0.3},
        "average_odds_difference": {"kind": "abs_difference", "max": 0.3},
    },
    "audit": {
        "window_days": 3,
        "label_lag_days": 1,
        "daily_rows": 2000,
        "scenario": "stable",
        "psi_threshold": 0.25,
        "group_mix_psi_threshold": 0.1,
    },
}
