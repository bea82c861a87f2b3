"""Fairgate and a real MLflow: a tracking server process (PostgreSQL backend store, artifacts in the
S3 endpoint on loopback), and ``mlflow models serve`` of the production alias answered over HTTP."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from tests.support.policies import synthetic_credit_policy
from tests.support.stack import PG, _free_port, require_postgres

from fairgate.errors import NotApproved
from fairgate.governance import evidence, registry
from fairgate.integrations import tracking
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.base import sha256_bytes
from fairgate.storage.roots import open_store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

BIN = Path(sys.executable).parent
TOKEN = "s3cret-for-the-scoring-port"  # the served fixture's FAIRGATE_SERVE_TOKEN
RECORD = {
    "application_id": "web-1",
    "gender": "female",
    "age": 30,
    "income": 38000.0,
    "loan_amount": 7000.0,
    "duration_months": 48,
    "savings_band": "high",
    "employment": "employed",
    "postcode_area": "east",
}


def _wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def mlflow_server(s3_endpoint, tmp_path_factory):
    """``mlflow server`` on a fresh PostgreSQL database, proxying artifacts to a bucket of the S3 endpoint."""
    import boto3
    import psycopg2

    require_postgres()
    db = f"fairgate_mlflow_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {db}")
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    bucket = f"mlflow-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    port = _free_port()
    log = tmp_path_factory.mktemp("mlflow") / "server.log"
    env = {**os.environ, **creds, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{db}",
            "--artifacts-destination",
            f"s3://{bucket}/mlflow",
        ],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/health", proc, 120, log)
        yield {"url": url, "bucket": bucket, "s3": s3_endpoint, "db": db}
    finally:
        os.killpg(proc.pid, 15)  # the server and the job consumers it starts
        proc.wait(30)
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        conn.close()


@pytest.fixture(scope="module")
def tracked(mlflow_server, tmp_path_factory):
    """Two lifecycle runs of the synthetic credit model (two deployed versions), synced to the server."""
    folder = tmp_path_factory.mktemp("credit")
    path, data = synthetic_credit_policy(folder, 3000, seed=3)
    store = open_store(str(folder / "store"))
    first = lifecycle.run_in_process(store, load_policy(path), RunInfo(dag_id="nb", run_id="v1"))
    (folder / "credit.csv").write_text(data.sample(frac=0.9, random_state=1).to_csv(index=False))
    second = lifecycle.run_in_process(store, load_policy(path), RunInfo(dag_id="nb", run_id="v2"))
    assert first.decision == second.decision == "deployed"
    policy = load_policy(path)
    out = tracking.track(store, policy, uri=mlflow_server["url"])
    assert out.logged, out
    return {
        "store": store,
        "policy": policy,
        "path": path,
        "folder": folder,
        "client": tracking.client(mlflow_server["url"]),
        "versions": [m["version"] for m in registry.list_versions(store, "credit")],
    }


def _run(client, run_id):
    exp = client.get_experiment_by_name("fairgate/credit")
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`fairgate.run_id` = '{run_id}' and tags.`fairgate.kind` = 'lifecycle'"
    )
    assert len(runs) == 1
    return runs[0]


def test_a_lifecycle_run_shows_its_fairness_metrics_params_tags_and_artifacts(tracked, tmp_path):
    import numpy as np
    import pandas as pd

    from fairgate.models import training

    store, client = tracked["store"], tracked["client"]
    rec = evidence.find(store, "credit", "v2")
    entry, rec = rec, rec["record"]
    run = _run(client, "v2")
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    assert tags["fairgate.data_sha256"] == rec["data"]["sha256"]
    assert tags["fairgate.evidence_hash"] == entry["hash"] and tags["fairgate.decision"] == "deployed"
    assert tags["fairgate.complete"] == "true"
    assert params["fairness.thresholds.disparate_impact.min"] == "0.05"  # LOOSE, as written in the policy
    di = rec["fairness"]["gender"]["disparate_impact"]
    assert metrics["fairness/gender/disparate_impact"] == pytest.approx(di["value"])
    assert metrics["fairness/gender/disparate_impact/ci_low"] == pytest.approx(di["ci_low"])
    assert metrics["performance/balanced_accuracy"] == pytest.approx(rec["performance"]["balanced_accuracy"])
    # The per-group rates, recomputed here from the stored model on the run's test split.
    df = pd.read_parquet(io.BytesIO(store.get(store.key_of(rec["data"]["uri"]))))
    split = pd.read_parquet(io.BytesIO(store.get("runs/nb/v2/split.parquet")))["split"].to_numpy()
    test = df[split == "test"].reset_index(drop=True)
    model = registry.load_model(store, "credit", rec["model"]["sha256"])
    _, decisions = training.predict(model, test, tracked["policy"])
    women = (test["gender"] != "male").to_numpy()
    assert metrics["group/gender/unprivileged/selection_rate"] == pytest.approx(decisions[women].mean())
    assert metrics["group/gender/privileged/selection_rate"] == pytest.approx(decisions[~women].mean())
    assert metrics["fairness/gender/disparate_impact"] == pytest.approx(
        decisions[women].mean() / decisions[~women].mean()
    )
    # Artifacts: the pages as the evidence names them, byte for byte.
    local = Path(client.download_artifacts(run.info.run_id, "fairgate", str(tmp_path)))
    assert sha256_bytes((local / "report.html").read_bytes()) == rec["report"]["sha256"]
    assert sha256_bytes((local / "model_card.md").read_bytes()) == rec["model_card"]["sha256"]
    assert json.loads((local / "evidence.json").read_text())["hash"] == entry["hash"]
    assert np.isfinite(metrics["data/rows"]) and metrics["data/rows"] == rec["data"]["rows"]


def test_every_deployed_version_is_a_model_version_and_the_alias_follows_deploy_and_rollback(tracked):
    store, client, policy = tracked["store"], tracked["client"], tracked["policy"]
    v1, v2 = tracked["versions"]
    versions = {mv.tags["fairgate.sha256"]: mv for mv in client.search_model_versions("name = 'credit'")}
    assert set(versions) == {v1, v2}
    assert versions[v2].tags["fairgate.gate_outcome"] == "pass"
    assert versions[v2].tags["fairgate.evidence_hash"] == evidence.find(store, "credit", "v2")["hash"]
    assert client.get_model_version_by_alias("credit", "production").tags["fairgate.sha256"] == v2
    assert tracking.disagreements(store, "credit", mlflow=client) == []

    lifecycle.rollback(store, policy, to_version=v1, actor="test", reason="alias check", run_id="rb1", dag_id="rb")
    # Fairgate's pointer moved and MLflow has not heard yet: the check says so, naming both versions.
    problems = tracking.disagreements(store, "credit", mlflow=client)
    assert len(problems) == 1 and v1[:12] in problems[0] and "alias names version" in problems[0]
    from fairgate.cli.main import main

    assert (
        main(
            [
                "--policy",
                tracked["path"].as_posix(),
                "--artifact-root",
                str(tracked["folder"] / "store"),
                "mlflow-check",
                "--tracking-uri",
                str(client.tracking_uri),
            ]
        )
        == 2
    )
    out = tracking.track(store, policy, uri=str(client.tracking_uri), lifecycle_runs=False)  # the rollback DAG's step
    assert out.logged and out.alias == versions[v1].version
    assert client.get_model_version_by_alias("credit", "production").tags["fairgate.sha256"] == v1
    assert (
        main(
            [
                "--policy",
                tracked["path"].as_posix(),
                "--artifact-root",
                str(tracked["folder"] / "store"),
                "mlflow-check",
                "--tracking-uri",
                str(client.tracking_uri),
            ]
        )
        == 0
    )


def test_a_server_that_is_down_loses_nothing_and_a_resync_logs_the_run_later(tracked, tmp_path, mlflow_server):
    store, policy = tracked["store"], tracked["policy"]
    lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="v3"))
    down = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(tracking.TrackingUnavailable, match="did not take the write"):  # a try with retries left
        tracking.track(store, policy, uri=down, run_id="v3", last_try=False)
    out = tracking.track(store, policy, uri=down, run_id="v3", last_try=True)
    assert out.logged is False
    last = evidence.recent(store, "credit", "tracking", last=1)[0]["record"]
    assert last["status"] == "not_logged" and last["lifecycle_run_id"] == "v3"
    assert evidence.find(store, "credit", "v3")["record"]["kind"] == "lifecycle"  # the run's record is untouched
    problems = tracking.disagreements(store, "credit", mlflow=tracking.client(mlflow_server["url"]))
    assert any("not in MLflow (first: v3)" in p for p in problems)
    synced = tracking.sync(store, policy, mlflow=tracking.client(mlflow_server["url"]))
    assert len(synced.runs) == 1 and synced.present >= 2
    assert _run(tracked["client"], "v3").data.tags["fairgate.complete"] == "true"
    assert evidence.verify(store, "credit").ok


def _cli(tracked) -> list[str]:
    """The CLI on the tracked store and policy."""
    return [
        str(BIN / "fairgate"),
        "--artifact-root",
        str(tracked["folder"] / "store"),
        "--policy",
        str(tracked["path"]),
    ]


def _fairgate_serve(tracked, mlflow_server, port: int, log: Path, **env_changes) -> subprocess.Popen:
    """``fairgate serve`` as a user starts it: Fairgate's approved version, checked, on MLflow's server."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server["url"],
        "PATH": f"{BIN}:{os.environ['PATH']}",
        **env_changes,
    }
    return subprocess.Popen(
        [*_cli(tracked), "serve", "--port", str(port), "--workdir", str(log.parent / "model")],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def served(tracked, mlflow_server, tmp_path_factory):
    """``fairgate serve`` of the credit model as its own process."""
    tracking.track(tracked["store"], tracked["policy"], uri=mlflow_server["url"], lifecycle_runs=False)
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    proc = _fairgate_serve(tracked, mlflow_server, port, log, FAIRGATE_FOLLOW_SECONDS="1", FAIRGATE_SERVE_TOKEN=TOKEN)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/ping", proc, 120, log)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def _strict(text: bytes) -> dict:
    """JSON as strict parsers read it (browsers, Go, Jackson): NaN, Infinity and -Infinity refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _post(url: str, body: bytes | str, *, token: str | None = TOKEN) -> tuple[int, dict]:
    data = body.encode() if isinstance(body, str) else body
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"{url}/invocations", data=data, headers={"Content-Type": "application/json", **auth})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, _strict(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _strict(exc.read())


def test_the_served_production_model_answers_with_the_batch_scorers_decisions_and_reasons(tracked, served):
    import pandas as pd

    from fairgate.models import training
    from fairgate.monitoring import scoring
    from fairgate.stages import monitoring

    store, policy = tracked["store"], tracked["policy"]
    version = registry.production_version(store, "credit")
    frame = pd.read_csv(tracked["folder"] / "credit.csv").head(20)
    status, body = _post(served, json.dumps({"dataframe_records": json.loads(frame.to_json(orient="records"))}))
    assert status == 200, body
    got = pd.DataFrame(body["predictions"])
    model = registry.load_model(store, "credit", version)
    scores, decisions = training.predict(model, frame, policy)
    assert got["application_id"].tolist() == frame["application_id"].tolist()
    assert got["score"].to_numpy() == pytest.approx(scores)
    assert got["decision"].tolist() == decisions.tolist()
    assert set(got["model_version"]) == {version}
    batch, _ = scoring.score_records(
        model, frame, policy, version=version, reference=monitoring._reference(store, policy, version, frame)
    )
    for i in range(1, 4):
        assert got[f"reason_{i}"].tolist() == batch[f"reason_{i}"].tolist()
    status, body = _post(served, json.dumps({"dataframe_records": [RECORD], "params": {"reasons": False}}))
    assert status == 200 and "reason_1" not in body["predictions"][0]
    # Shapley values on request: the server's base + values is the log-odds of the score it answered
    status, body = _post(served, json.dumps({"dataframe_records": [RECORD], "params": {"shapley": True}}))
    assert status == 200, body
    [answer] = body["predictions"]
    said = answer["shapley"]
    assert said["method"] == "linear (exact)" and set(said["values"]) == set(policy.features)
    score = answer["score"]
    assert said["base"] + sum(said["values"].values()) == pytest.approx(math.log(score / (1 - score)), abs=1e-6)
    many = {"dataframe_records": [RECORD] * 101, "params": {"shapley": True}}
    status, body = _post(served, json.dumps(many))
    assert status == 400 and "at most 100 records" in body["message"], body


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"income": "lots"}, "'income' must be a number"),
        ({"savings_band": "enormous"}, "'savings_band' has the value 'enormous'"),
        ({"employment": None}, "'employment'"),
        ({"duration_months": None}, "'duration_months' must be a number"),
        ({"application_id": {"a": 1}}, "'application_id' must be the record's row key"),
        ({"application_id": None}, "'application_id' must be the record's row key"),
        ({"gender": None}, "Protected column 'gender' has no value"),
        ({"gender": "robot"}, "Protected column 'gender' has the value 'robot'"),
    ],
)
def test_bad_records_get_a_400_naming_the_column(served, change, named):
    status, body = _post(served, json.dumps({"dataframe_records": [{**RECORD, **change}]}))
    assert status == 400 and named in body["message"], body


def test_a_missing_column_an_empty_request_and_a_broken_body_get_a_400(served):
    record = {k: v for k, v in RECORD.items() if k != "loan_amount"}
    status, body = _post(served, json.dumps({"dataframe_records": [record]}))
    assert status == 400 and "['loan_amount']" in body["message"]
    status, body = _post(served, json.dumps({"dataframe_records": []}))
    assert status == 400 and "no records" in body["message"]
    assert _post(served, b"")[0] == 400
    assert _post(served, b"{not json")[0] == 400


def test_every_answer_is_logged_and_the_server_follows_a_rollback_mid_stream(tracked, served):
    """Requests without pause while production is rolled back and forth: none fails, each answer names the
    version that made it (one switch each way), and every answered decision is in the prediction log."""
    import threading
    from datetime import UTC, datetime

    from fairgate.monitoring import served_log

    store, policy = tracked["store"], tracked["policy"]
    before = registry.production_version(store, "credit")
    other = next(v for v in tracked["versions"] if v != before)
    answers, failures, stop = [], [], threading.Event()

    def client() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            status, body = _post(served, json.dumps({"dataframe_records": [{**RECORD, "application_id": f"live-{i}"}]}))
            if status != 200:
                failures.append((status, body))
                continue
            answers.append(body["predictions"][0])

    def wait_for(version: str) -> None:
        deadline = time.monotonic() + 60
        while not answers or answers[-1]["model_version"] != version:
            assert time.monotonic() < deadline, f"the server did not move to {version[:12]}"
            time.sleep(0.2)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_for(before)
        lifecycle.rollback(store, policy, to_version=other, actor="ops", reason="mid-stream", run_id="live1")
        wait_for(other)
        lifecycle.rollback(store, policy, to_version=before, actor="ops", reason="back", run_id="live2")
        wait_for(before)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    said = [a["model_version"] for a in answers]
    changes = [v for i, v in enumerate(said) if i == 0 or v != said[i - 1]]
    assert changes == [before, other, before] and all(a["logged"] is True for a in answers)
    logged = served_log.read_online(store, served_log.rules_for(store, policy), datetime.now(UTC).date())
    ours = logged[logged["application_id"].str.startswith("live-")].set_index("decision_id")
    assert len(ours) == len(answers) and set(ours.index) == {a["decision_id"] for a in answers}
    for a in answers[:: max(len(answers) // 20, 1)]:  # each as the client received it
        row = ours.loc[a["decision_id"]]
        assert (row["model_version"], int(row["decision"])) == (a["model_version"], a["decision"])
        assert float(row["score"]) == pytest.approx(a["score"]) and row["reason_1"] == a["reason_1"]


def test_with_a_token_the_scoring_port_answers_only_requests_that_carry_it(served):
    """The served fixture runs with FAIRGATE_SERVE_TOKEN: a request without the bearer token (or with
    another) is a 401 that decides and logs nothing; the health check stays open for the load balancer."""
    body = json.dumps({"dataframe_records": [RECORD]})
    for token in (None, "wrong"):
        status, said = _post(served, body, token=token)
        assert status == 401 and said["error_code"] == "UNAUTHENTICATED"
    req = urllib.request.Request(f"{served}/invocations", data=body.encode(), headers={"Authorization": TOKEN})
    with pytest.raises(urllib.error.HTTPError) as bare:  # the token without "Bearer "
        urllib.request.urlopen(req, timeout=30)
    assert bare.value.code == 401
    with urllib.request.urlopen(f"{served}/ping", timeout=30) as resp:
        assert resp.status == 200
    status, said = _post(served, body)
    assert status == 200 and said["predictions"][0]["logged"] is True


def test_a_tampered_model_file_is_refused_by_the_server(tracked, mlflow_server, tmp_path):
    import boto3

    client = tracked["client"]
    mv = client.get_model_version_by_alias("credit", "production")
    s3 = boto3.client(
        "s3",
        endpoint_url=mlflow_server["s3"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    exp = client.get_experiment_by_name("fairgate/credit")
    key = f"mlflow/{exp.experiment_id}/{mv.run_id}/artifacts/model/artifacts/model.skops"
    original = s3.get_object(Bucket=mlflow_server["bucket"], Key=key)["Body"].read()
    s3.put_object(Bucket=mlflow_server["bucket"], Key=key, Body=original[:-4] + b"EVIL")
    try:
        env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server["url"], "PATH": f"{BIN}:{os.environ['PATH']}"}
        done = subprocess.run(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/credit@production",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(_free_port()),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode != 0
        assert "Fairgate refused to load this model" in done.stderr + done.stdout
        assert "does not match the recorded" in done.stderr + done.stdout
    finally:
        s3.put_object(Bucket=mlflow_server["bucket"], Key=key, Body=original)


def _mlflow_serve(uri: str, mlflow_server, **env_changes) -> subprocess.CompletedProcess:
    """``mlflow models serve`` of ``uri`` run directly, bypassing ``fairgate serve`` (refusals end it)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server["url"], "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("FAIRGATE_ARTIFACT_ROOT", None)
    command = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local"]
    return subprocess.run(
        [*command, "-h", "127.0.0.1", "-p", str(_free_port())],
        env={**env, **env_changes},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_served_directly_a_version_starts_only_if_the_evidence_approves_it_for_production(tracked, mlflow_server):
    client, store = tracked["client"], tracked["store"]
    production = registry.production_version(store, "credit")
    older = next(v for v in tracked["versions"] if v != production)
    mv_older = tracking.mlflow_version(client, "credit", older)
    done = _mlflow_serve(f"models:/credit/{mv_older.version}", mlflow_server)
    assert done.returncode != 0 and "FAIRGATE_ARTIFACT_ROOT is not set" in done.stdout + done.stderr
    done = _mlflow_serve(
        f"models:/credit/{mv_older.version}", mlflow_server, FAIRGATE_ARTIFACT_ROOT=str(tracked["folder"] / "store")
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"holds version {older[:12]} of 'credit', but Fairgate's evidence approves {production[:12]}" in out


FOREIGN_CODE = """
import mlflow
from pathlib import Path
from mlflow.pyfunc.model import PythonModel


class Foreign(PythonModel):
    def load_context(self, context):
        Path(context.model_config["marker"]).write_text("foreign code ran")

    def predict(self, context, model_input, params=None):
        return [{"decision": 1, "model_version": "whatever you like"}] * len(model_input)


mlflow.models.set_model(Foreign())
"""


def test_the_alias_moved_to_a_foreign_model_serves_fairgates_version_and_never_runs_the_foreign_code(
    tracked, mlflow_server, served, tmp_path, monkeypatch
):
    import mlflow as mlflow_module

    client, store = tracked["client"], tracked["store"]
    production = registry.production_version(store, "credit")
    code, marker = tmp_path / "foreign.py", tmp_path / "ran.txt"
    code.write_text(FOREIGN_CODE)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server["url"])  # not set_tracking_uri: that outlives the test
    with mlflow_module.start_run():
        info = mlflow_module.pyfunc.log_model(
            name="model", python_model=str(code), model_config={"marker": str(marker)}
        )
    marker.unlink(missing_ok=True)  # logging a model from code runs it once (MLflow checks it loads)
    foreign = client.create_model_version(
        "credit", source=info.model_uri, model_id=info.model_id, tags={"fairgate.sha256": production}
    )
    fairgates = client.get_model_version_by_alias("credit", "production").version
    client.set_registered_model_alias("credit", "production", foreign.version)
    try:
        # the foreign version claims the production sha256; fairgate serve checks the folder, not the tag
        from fairgate.integrations import model_server

        folder = Path(
            mlflow_module.artifacts.download_artifacts(
                f"models:/credit/{foreign.version}", dst_path=str(tmp_path / "f")
            )
        )
        with pytest.raises(NotApproved, match="is not Fairgate's model: .*model code 'foreign.py'"):
            model_server.check_folder(folder, "credit", production)

        port, log = _free_port(), tmp_path / "serve" / "serve.log"
        log.parent.mkdir()
        proc = _fairgate_serve(tracked, mlflow_server, port, log)
        try:
            _wait_http(f"http://127.0.0.1:{port}/ping", proc, 120, log)
            status, body = _post(f"http://127.0.0.1:{port}", json.dumps({"dataframe_records": [RECORD]}))
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(30)
        assert status == 200 and body["predictions"][0]["model_version"] == production
        assert f"'production' alias names version {foreign.version}, not the one Fairgate approved" in log.read_text()
        assert not marker.exists()
        done = subprocess.run(
            [*_cli(tracked), "mlflow-check", "--tracking-uri", mlflow_server["url"]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2
    finally:
        client.set_registered_model_alias("credit", "production", fairgates)
        client.delete_model_version("credit", foreign.version)


@pytest.mark.e2e
def test_the_lifecycle_dag_logs_to_the_server_of_its_airflow_connection(
    lifecycle_dag, mlflow_server, tmp_path, monkeypatch
):
    import yaml
    from tests.support.dags import run_dag

    path, _ = synthetic_credit_policy(tmp_path, 2500, seed=11)
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "model_name": "credit_dag"}))
    host, port = mlflow_server["url"].removeprefix("http://").split(":")
    monkeypatch.setenv("FAIRGATE_POLICY", str(path))
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "http", "host": host, "port": int(port)})
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from fairgate_dev.local import load_dag

    # the DAG this policy gives (a model other than the bundled one: the suffixed id), parsed with it, so
    # dag.test() finds it when it serializes the file; `lifecycle_dag` has created the metadata DB
    dr = run_dag(load_dag("fairgate_lifecycle__credit_dag"))
    assert dr.state == "success"
    store = open_store(str(tmp_path / "store"))
    assert not (tmp_path / ".mlflow").exists()  # the connection's server, not the embedded store
    assert dr.get_task_instance("track_mlflow").state == "success"
    assert evidence.recent(store, "credit_dag", "tracking") == []  # logged: nothing added to the evidence
    client = tracking.client(mlflow_server["url"])
    exp = client.get_experiment_by_name("fairgate/credit_dag")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`fairgate.run_id` = '{dr.run_id}'")
    run = next(r for r in runs if r.data.tags["fairgate.kind"] == "lifecycle")
    # The mitigation search's candidates are nested runs, one each, the chosen one marked.
    candidates = evidence.find(store, "credit_dag", dr.run_id)["record"]["search"]["candidates"]
    nested = {r.data.tags["fairgate.candidate"]: r for r in runs if r.data.tags["fairgate.kind"] == "candidate"}
    assert set(nested) == {c["id"] for c in candidates}
    assert all(r.data.tags["mlflow.parentRunId"] == run.info.run_id for r in nested.values())
    chosen = next(c for c in candidates if c["chosen"])
    assert nested[chosen["id"]].data.tags["fairgate.chosen"] == "true"
    assert nested[chosen["id"]].data.metrics["validation/balanced_accuracy"] == pytest.approx(
        chosen["validation"]["performance"]["balanced_accuracy"]
    )
    assert run.data.tags["fairgate.evidence_hash"] == evidence.find(store, "credit_dag", dr.run_id)["hash"]
    assert client.get_model_version_by_alias("credit_dag", "production").tags[
        "fairgate.sha256"
    ] == registry.production_version(store, "credit_dag")


def test_the_nightly_audits_are_one_run_stepped_by_date(tracked, mlflow_server):
    import pandas as pd

    from fairgate.stages import monitoring

    store, policy, client = tracked["store"], tracked["policy"], tracked["client"]
    data = pd.read_csv(tracked["folder"] / "credit.csv")
    days = [pd.Timestamp("2026-03-02").date(), pd.Timestamp("2026-03-03").date()]
    for i, day in enumerate(days):
        monitoring.score_day(store, policy, day, data.iloc[i * 600 : (i + 1) * 600].reset_index(drop=True))
        monitoring.audit(store, policy, day, run_id=f"audit-{day}")
    assert tracking.track(store, policy, uri=mlflow_server["url"], lifecycle_runs=False).audits == 2
    assert tracking.track(store, policy, uri=mlflow_server["url"], lifecycle_runs=False).audits == 0  # once each
    exp = client.get_experiment_by_name("fairgate/credit")
    (run,) = client.search_runs([exp.experiment_id], filter_string="tags.`fairgate.kind` = 'audit'")
    history = client.get_metric_history(run.info.run_id, "fairness/gender/statistical_parity_difference")
    assert [h.step for h in history] == [(d - pd.Timestamp("1970-01-01").date()).days for d in days]
    for h, day in zip(history, days, strict=True):
        stored = json.loads(store.get(f"audits/model=credit/date={day}/audit.json"))
        spd = stored["fairness"]["gender"]["metrics"]["statistical_parity_difference"]
        assert h.value == pytest.approx(spd["value"])
    assert run.data.tags["fairgate.last_audit"] == str(days[-1])
