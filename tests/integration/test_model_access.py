"""Which users see which models in the Fairness view: the auth manager decides, per model's DAG.

Airflow's multi-team mode is real here: two teams in the metadata DB, each owning the DAG bundle
that holds one model's DAGs, the simple auth manager, and two viewers signed in with real JWTs
(each a member of one team). Requests go through the view's FastAPI app with those tokens, so the
route dependencies (``get_user``) run as they do behind the api-server.
"""

from __future__ import annotations

import json

import pytest

from fairgate.governance import evidence
from fairgate.storage.local import LocalStore

MODELS = {"alpha_credit": "alpha_team", "beta_adult": "beta_team"}
DAY = "2026-04-02"


@pytest.fixture(scope="module")
def teams():
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    from fairgate_dev.local import init_db

    init_db()
    with create_session() as session:
        for model, team_name in MODELS.items():
            if session.get(Team, team_name) is None and not session.query(Team).filter_by(name=team_name).count():
                team = Team(name=team_name)
                bundle = DagBundleModel(name=f"{model}_bundle")
                bundle.teams = [team]
                session.add_all([team, bundle])
                session.flush()
                for base in ("fairgate_lifecycle", "fairgate_audit"):
                    session.add(DagModel(dag_id=f"{base}__{model}", bundle_name=bundle.name, fileloc=f"{model}.py"))
    return MODELS


@pytest.fixture
def view(teams, tmp_path):
    """The view's app over a store holding both models (a decision, a run report and an audit each)."""
    from airflow.api_fastapi.app import create_auth_manager

    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _app(teams, tmp_path, monkeypatch)
    create_auth_manager()  # the session's other tests get the auth manager of their own settings back


def _app(teams, tmp_path, monkeypatch):
    from airflow.api_fastapi.app import create_auth_manager
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    policies = tmp_path / "policies"
    policies.mkdir()
    store = LocalStore(tmp_path / "store")
    for model in teams:
        (policies / f"{model}.yaml").write_text(f"model_name: {model}\n")
        evidence.append(
            store,
            model,
            {
                "kind": "lifecycle",
                "run_id": "r1",
                "dag_id": f"fairgate_lifecycle__{model}",
                "decision": "rejected",
                "model_name": model,
                "policy": {"sha256": "0" * 64, "path": str(policies / f"{model}.yaml")},
                "gate": {"outcome": "fail", "reasons": []},
            },
        )
        store.put(f"runs/fairgate_lifecycle__{model}/r1/report.html", f"<p>report of {model}</p>".encode())
        store.put(f"audits/model={model}/date={DAY}/report.html", f"<p>audit of {model}</p>".encode())
    monkeypatch.setenv("FAIRGATE_POLICIES", str(policies))
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(store.root))
    auth = create_auth_manager()
    from fairgate_airflow.ui import app

    return TestClient(app), auth


def _token(auth, name, role, teams):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = auth.generate_jwt(SimpleAuthManagerUser(username=name, role=role, teams=teams))
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "user,own,other", [("alice", "alpha_credit", "beta_adult"), ("bob", "beta_adult", "alpha_credit")]
)
def test_each_viewer_sees_only_the_models_of_their_team(view, user, own, other):
    client, auth = view
    headers = _token(auth, user, "viewer", [MODELS[own]])
    listed = [m["name"] for m in client.get("/api/overview", headers=headers).json()["models"]]
    assert listed == [own]
    page = client.get("/", headers=headers)
    assert page.status_code == 200 and own in page.text and other not in page.text
    assert client.get(f"/report/run/fairgate_lifecycle__{own}/r1", headers=headers).text == f"<p>report of {own}</p>"
    assert client.get(f"/report/audit/{own}/{DAY}", headers=headers).status_code == 200
    for path in (f"/report/run/fairgate_lifecycle__{other}/r1", f"/report/audit/{other}/{DAY}"):
        refused = client.get(path, headers=headers)
        assert refused.status_code == 403 and other not in refused.text


def test_an_admin_sees_every_model_and_nobody_sees_anything_unsigned(view):
    client, auth = view
    admin = _token(auth, "root", "admin", [])
    listed = [m["name"] for m in client.get("/api/overview", headers=admin).json()["models"]]
    assert listed == sorted(MODELS)
    assert client.get("/api/overview").status_code == 401


def test_opening_a_contest_needs_trigger_permission_same_origin_and_bounded_input(view):
    client, auth = view
    model = "alpha_credit"
    viewer = _token(auth, "alice", "viewer", [MODELS[model]])
    body = {"model": model, "row": "app-1", "reason": "Wrong address."}
    refused = client.post("/api/contest", json=body, headers=viewer)  # a viewer reads, and may not trigger
    assert refused.status_code == 403 and f"starts fairgate_contest__{model}" in refused.json()["detail"]

    admin = _token(auth, "root", "admin", [])
    cross = client.post("/api/contest", json=body, headers={**admin, "Origin": "https://elsewhere.example"})
    assert cross.status_code == 403 and "Cross-origin" in cross.json()["detail"]
    client.cookies.set("_token", admin["Authorization"][7:])  # what a browser sends on its own, to any site's form
    try:
        cookie_only = client.post("/api/contest", json=body)
    finally:
        client.cookies.clear()
    assert cookie_only.status_code == 403 and "must come from this site" in cookie_only.json()["detail"]

    huge = client.post("/api/contest", content=b'{"reason": "' + b"x" * (1 << 20) + b'"}', headers=admin)
    assert huge.status_code == 413
    long = client.post("/api/contest", json={**body, "reason": "x" * 2001}, headers=admin)
    assert long.status_code == 422 and "reason" in json.dumps(long.json())


def test_a_malformed_run_id_is_a_404_not_a_500(view):
    client, auth = view
    admin = _token(auth, "root", "admin", [])
    for run_id in ("..", "%2e%2e", "a%2Fb"):
        assert client.get(f"/report/run/fairgate_lifecycle__alpha_credit/{run_id}", headers=admin).status_code == 404


def test_a_dag_id_that_climbs_out_of_the_store_is_a_404_and_an_impossible_date_names_its_field(view):
    """Before: /fairgate/report/run/%2e%2e/x answered 500, and a contest dated 2026-02-30 answered 400
    with "day is out of range for month", naming no field."""
    client, auth = view
    admin = _token(auth, "root", "admin", [])
    for dag_id in ("..", "%2e%2e", "."):
        assert client.get(f"/report/run/{dag_id}/x", headers=admin).status_code == 404
    body = {"model": "alpha_credit", "row": "app-1", "reason": "Wrong address.", "date": "2026-02-30"}
    bad = client.post("/api/contest", json=body, headers=admin)
    assert bad.status_code == 400 and "Field 'date'" in bad.json()["detail"] and "2026-02-30" in bad.json()["detail"]
