"""Shared fixtures. Airflow is pointed at a throw-away home before anything imports it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml

from fairgate_dev.local import REPO, configure

_HOME = Path(tempfile.mkdtemp(prefix="fairgate-airflow-"))
configure(_HOME / "home", _HOME / "artifacts")

DEFAULT_POLICY = REPO / "include" / "config" / "policy.yaml"


def default_policy_dict(*, search: bool = False) -> dict:
    """The bundled policy. Without ``search``, its mitigation search is left at the schema's default
    (reweighing only), which keeps each lifecycle run fast; tests/dags/test_search_e2e.py runs the
    shipped search."""
    raw = yaml.safe_load(DEFAULT_POLICY.read_text())
    if not search:
        raw.pop("mitigation", None)
    return raw


@pytest.fixture
def write_policy(tmp_path, monkeypatch):
    """Write a policy (the default with ``changes`` applied) and make it the one in force."""

    def _write(changes: dict | None = None, name: str = "policy.yaml") -> Path:
        raw = default_policy_dict()
        for dotted, value in (changes or {}).items():
            node = raw
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            if value is _DELETE:
                node.pop(leaf, None)
            else:
                node[leaf] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("FAIRGATE_POLICY", str(path))
        return path

    return _write


_DELETE = object()


def synthetic_credit_policy(folder: Path, rows: int, *, seed: int, **sections) -> tuple[Path, object]:
    """Synthetic credit data (known disparity and proxy) in ``folder`` and a policy for it written by
    ``fairgate policy init``, with loose gate thresholds and ``sections`` merged in; the path and the data."""
    from tests.dags.conftest import LOOSE

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


@pytest.fixture
def delete():
    return _DELETE


@pytest.fixture
def store(tmp_path, monkeypatch):
    from fairgate.storage.local import LocalStore

    root = tmp_path / "artifacts"
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(root))
    return LocalStore(root)


@pytest.fixture(scope="session")
def adult():
    from fairgate.data.adult import read_adult

    return read_adult("data")


def pytest_report_header(config):
    return f"AIRFLOW_HOME={os.environ['AIRFLOW_HOME']}"
