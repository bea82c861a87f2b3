"""``fairgate_lifecycle`` end to end with ``dag.test()``: one run per outcome, on real Adult data.

Every run uses a throw-away Airflow home (SQLite) and its own artifact store. Expected values
are recomputed here from the stored artifacts, not read back from the code under test.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from html.parser import HTMLParser

import pandas as pd
import pytest
from tests.support.dags import DAG_ID, file_of, record_of, run_dag
from tests.support.policies import LOOSE

from fairgate.governance import evidence, registry
from fairgate.storage.base import sha256_bytes
from fairgate.storage.local import LocalStore

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_adult_default_policy(lifecycle_dag, store, write_policy):
    write_policy()
    dr = run_dag(lifecycle_dag)
    assert dr.state == "success"
    rec = record_of(store, dr)

    # The evidence points at the artifacts it describes.
    snapshot = file_of(store, rec["data"]["uri"])
    assert sha256_bytes(snapshot) == rec["data"]["sha256"] and rec["data"]["rows"] == 30162
    assert sha256_bytes(file_of(store, rec["model"]["uri"])) == rec["model"]["sha256"]
    assert sha256_bytes(file_of(store, rec["report"]["uri"])) == rec["report"]["sha256"]
    assert sha256_bytes(file_of(store, rec["mitigation"]["uri"])) == rec["mitigation"]["sha256"]

    # Bias found for sex, recomputed from the training rows of the stored split (made before mitigation).
    from fairgate.data.features import feature_frame
    from fairgate.models.training import load_model_bytes
    from fairgate.policy.loader import load_policy

    policy = load_policy()
    df = pd.read_parquet(io.BytesIO(snapshot))
    run_prefix = store.key_of(rec["report"]["uri"]).rsplit("/", 1)[0]
    split = pd.read_parquet(io.BytesIO(store.get(f"{run_prefix}/split.parquet")))
    assert list(split["row"]) == list(df["row_id"])
    train = df[split["split"].to_numpy() == "train"]
    fav = (train["income"] == ">50K").to_numpy()
    male = (train["sex"] == "Male").to_numpy()
    di_sex = fav[~male].mean() / fav[male].mean()
    assert di_sex < 0.8
    assert rec["bias"]["detected"] and rec["bias"]["measured_on"].startswith(f"training rows ({len(train)} ")
    assert rec["bias"]["comparisons"]["sex"]["disparate_impact"] == pytest.approx(di_sex, abs=1e-12)

    # Reweighing ran on the training rows only: one weight per training row, and the weights bring
    # weighted DI for sex on those rows to 1.
    weights = pd.read_parquet(io.BytesIO(file_of(store, rec["mitigation"]["uri"])))
    assert list(weights["row"]) == list(train["row_id"])
    w = weights["weight"].to_numpy()
    weighted = (w[~male & fav].sum() / w[~male].sum()) / (w[male & fav].sum() / w[male].sum())
    assert weighted == pytest.approx(1.0, abs=1e-9)
    assert rec["mitigation"]["applied"] and rec["model"]["weighted"]

    # The search (default: none and reweighing) chose on the validation split. Recomputed here: each
    # stored candidate's DI for sex on the validation rows; neither is inside the band, so the rule
    # takes the one closer to it, and the record says so.
    val = df[split["split"].to_numpy() == "validation"]
    v_male = (val["sex"] == "Male").to_numpy()
    search = rec["search"]
    assert [c["id"] for c in search["candidates"]] == ["none.logistic_regression", "reweighing.logistic_regression"]
    di_val = {}
    for c in search["candidates"]:
        m = load_model_bytes(file_of(store, c["model"]["uri"]), expected_sha256=c["model"]["sha256"])
        p = m.predict_proba(feature_frame(val, policy))[:, 1] >= 0.5
        di_val[c["id"]] = p[~v_male].mean() / p[v_male].mean()
        assert c["validation"]["fairness"]["sex"]["disparate_impact"]["value"] == pytest.approx(
            di_val[c["id"]], abs=1e-12
        )
    assert max(di_val.values()) < 0.8 and search["within_bands"] == []
    assert search["chosen"] == max(di_val, key=di_val.get) == "reweighing.logistic_regression"
    assert rec["model"]["sha256"] == search["candidates"][1]["model"]["sha256"]

    # The gate's DI for sex is what the stored model does on the stored test split, and the decision
    # follows the policy band [0.8, 1.25].
    test = df[split["split"].to_numpy() == "test"]
    model = load_model_bytes(file_of(store, rec["model"]["uri"]), expected_sha256=rec["model"]["sha256"])
    pred = model.predict_proba(feature_frame(test, policy))[:, 1] >= 0.5
    t_male = (test["sex"] == "Male").to_numpy()
    di_model = pred[~t_male].mean() / pred[t_male].mean()
    assert rec["fairness"]["sex"]["disparate_impact"]["value"] == pytest.approx(di_model, abs=1e-12)
    assert rec["fairness"]["sex"]["disparate_impact"]["ci_high"] < 0.8  # wholly outside the band
    assert rec["decision"] == "rejected" and rec["gate"]["outcome"] == "fail"
    assert registry.production_version(store, policy.model_name) is None

    from fairgate.cli.main import main

    assert main(["verify-log"]) == 0
    _check_report_and_card(store, rec, test, policy)


class _Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None


def _numbers(text):
    return [float(x) for x in re.findall(r"-?\d+\.\d+", text)]


def _check_report_and_card(store, rec, test, policy):
    """The report and card carry the evidence record's numbers, and every chart is a real image."""
    import base64

    from matplotlib.image import imread

    page = file_of(store, rec["report"]["uri"]).decode()
    parser = _Tables()
    parser.feed(page)
    fairness_table = next(t for t in parser.tables if t[0][:3] == ["comparison", "n unpriv / priv", "DI"])
    assert {row[0] for row in fairness_table[1:]} == set(rec["fairness"])
    metrics = [
        "disparate_impact",
        "statistical_parity_difference",
        "equal_opportunity_difference",
        "average_odds_difference",
        "false_positive_rate_difference",
        "false_negative_rate_difference",
    ]
    for row in fairness_table[1:]:
        res = rec["fairness"][row[0]]
        assert row[1] == f"{res['counts']['unprivileged']['n']:.0f} / {res['counts']['privileged']['n']:.0f}"
        for cell, metric in zip(row[2:], metrics, strict=True):
            shown = _numbers(cell)
            recorded = [res[metric][k] for k in ("value", "ci_low", "ci_high")]
            assert shown == pytest.approx(recorded, abs=5e-5), (row[0], metric)
    compared = next(t for t in parser.tables if t[0][0] == "model")
    by_model = {row[0]: _numbers(" ".join(row[1:4])) for row in compared[1:]}
    assert set(by_model) == {"candidate", "unmitigated"}
    for name, shown in by_model.items():
        pos = rec["comparison"][name]
        assert shown == pytest.approx([pos["accuracy"], pos["balanced_accuracy"], pos["roc_auc"]], abs=5e-5)
    # The candidate's numbers in the comparison are the gate's own; the unmitigated twin is a different model.
    assert rec["comparison"]["candidate"]["accuracy"] == rec["performance"]["accuracy"]
    assert rec["comparison"]["unmitigated"]["fairness"]["sex"]["disparate_impact"] != pytest.approx(
        rec["comparison"]["candidate"]["fairness"]["sex"]["disparate_impact"], abs=1e-3
    )

    # The search table: every candidate with its validation balanced accuracy, the chosen one marked.
    search_table = next(t for t in parser.tables if t[0][:2] == ["candidate", "method"])
    shown = {row[0]: row for row in search_table[1:]}
    assert set(shown) == {c["id"] for c in rec["search"]["candidates"]}
    for c in rec["search"]["candidates"]:
        assert float(shown[c["id"]][3]) == pytest.approx(c["validation"]["performance"]["balanced_accuracy"], abs=5e-5)
        assert (shown[c["id"]][2] == "chosen") == (c["id"] == rec["search"]["chosen"])

    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    # base rates, the search's front, fairness-accuracy position, metric intervals, importance of the two
    # models, the candidate's Shapley values
    assert len(images) == 7
    assert "mean absolute Shapley value per input and group" in [alt for alt, _ in images]
    assert rec["shapley"]["max_additivity_error"] < 1e-6 and set(rec["shapley"]["overall"]) == set(policy.features)
    for alt, data in images:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n", alt
        pixels = imread(io.BytesIO(png))
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300 and pixels.std() > 0.05, alt

    card = file_of(store, rec["model_card"]["uri"]).decode()
    for section in (
        "Model details",
        "Intended use",
        "Factors",
        "Metrics",
        "Evaluation data",
        "Training data",
        "Quantitative analyses",
        "Ethical considerations and caveats",
        "Approval",
    ):
        assert f"## {section}\n" in card and f"<h2>{section}</h2>" in page
    perf = rec["performance"]
    assert re.search(r"Accuracy (\d\.\d+)", card).group(1) == f"{perf['accuracy']:.4f}"
    assert f"{rec['data']['rows']} rows, sha256 `{rec['data']['sha256']}`" in card
    assert f"({len(test)} rows)" in card
    # the fairness table's row (the proxy table has a "| sex |" row too, without group counts)
    sex_row = next(line for line in card.splitlines() if re.match(r"\| sex \| \d+ / \d+ \|", line))
    assert _numbers(sex_row)[:3] == pytest.approx(
        [rec["fairness"]["sex"]["disparate_impact"][k] for k in ("value", "ci_low", "ci_high")], abs=5e-5
    )


def test_deploy_outcome(deployed):
    root, _policy_path, dr = deployed
    store = LocalStore(root)
    assert dr.state == "success"
    rec = record_of(store, dr)
    assert rec["decision"] == "deployed" and rec["gate"]["outcome"] == "pass"
    version = registry.production_version(store, "adult_income")
    assert version == rec["model"]["sha256"] == rec["model"]["version"]
    manifest = registry.read_manifest(store, "adult_income", version)
    assert manifest["approved"] is True and manifest["approver"] == "fairness_gate (automatic)"
    assert manifest["data_sha256"] == rec["data"]["sha256"]
    stored = store.get(f"registry/adult_income/versions/{version}/model.skops")
    assert sha256_bytes(stored) == version
    assert "## Approval" in store.get(f"registry/adult_income/versions/{version}/model_card.md").decode()


def _copy(deployed, tmp_path, monkeypatch, changes, write_policy):
    root, _, _ = deployed
    dst = tmp_path / "store"
    shutil.copytree(root, dst)
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(dst))
    write_policy({"fairness.thresholds": LOOSE, **changes})
    store = LocalStore(dst)
    return store, store.get_with_etag("registry/adult_income/production.json")


@pytest.mark.parametrize(
    "choice,rationale,decision",
    [
        ("Approve", "Groups too small to measure here; approved for a monitored pilot.", "deployed"),
        ("Reject", "Not enough evidence for the intersection groups.", "rejected"),
    ],
)
def test_review_answered_through_the_rest_api(
    lifecycle_dag, deployed, tmp_path, monkeypatch, write_policy, choice, rationale, decision
):
    # min_positives above the data size makes every comparison insufficient evidence -> review
    store, (pointer_before, etag_before) = _copy(
        deployed, tmp_path, monkeypatch, {"fairness.min_positives": 100000}, write_policy
    )
    dr = run_dag(lifecycle_dag, review=(choice, rationale))
    assert dr.state == "success"
    rec = record_of(store, dr)
    assert rec["gate"]["outcome"] == "review"
    # What the reviewer was shown: the gate's reasons, the metrics table and a link to the run report.
    body = dr.review_request["body"]
    import html as _html

    from markdown_it import MarkdownIt

    shown = _html.unescape(MarkdownIt().render(body))  # what the reviewer reads: the body as rendered
    assert all(reason in shown for reason in rec["gate"]["reasons"])
    assert "| sex |" in body and f"{rec['performance']['accuracy']:.4f}" in body
    from fairgate.reporting.report import run_report_path

    assert f"/fairgate/{run_report_path(DAG_ID, dr.run_id)}" in body
    assert rec["report"]["uri"] in body  # the stored copy; record_evidence replaced it with the final one
    assert rec["review"]["choice"] == choice and rec["review"]["rationale"] == rationale
    assert rec["review"]["reviewer"]
    # A model is in production, so the report compares the candidate with it on the same test rows.
    production = rec["comparison"]["production"]
    assert production["version"] == json.loads(pointer_before)["version"] == rec["gate"]["champion"]["version"]
    assert production["balanced_accuracy"] == rec["gate"]["champion"]["balanced_accuracy"]
    assert "production (" in file_of(store, rec["report"]["uri"]).decode()
    assert rec["decision"] == decision
    pointer, etag = store.get_with_etag("registry/adult_income/production.json")
    card = file_of(store, rec["model_card"]["uri"]).decode()
    assert rationale in card
    if decision == "deployed":
        assert json.loads(pointer)["version"] == rec["model"]["sha256"]
        assert json.loads(pointer)["history"][-1]["version"] == json.loads(pointer_before)["version"]
        manifest = registry.read_manifest(store, "adult_income", rec["model"]["sha256"])
        assert manifest["review"]["rationale"] == rationale
    else:
        assert (pointer, etag) == (pointer_before, etag_before)


@pytest.mark.parametrize(
    "breakage,named",
    [
        (lambda df: df.drop(columns=["race"]), "expect_column_to_exist on column 'race'"),
        (
            lambda df: df.assign(sex=df["sex"].where(df.index % 50 != 0)),
            "expect_column_values_to_not_be_null on column 'sex'",
        ),
        (
            lambda df: df.assign(race=df["race"].replace("Other", "Martian")),
            "expect_column_values_to_be_in_set on column 'race'",
        ),
    ],
)
def test_bad_input_stops_at_quality_and_touches_nothing(
    lifecycle_dag, deployed, tmp_path, monkeypatch, write_policy, adult, breakage, named
):
    bad = tmp_path / "bad.csv"
    breakage(adult.copy()).to_csv(bad, index=False)
    store, before = _copy(deployed, tmp_path, monkeypatch, {"dataset.source": str(bad)}, write_policy)
    versions_before = store.list("registry/")
    dr = run_dag(lifecycle_dag)
    assert dr.state == "failed"
    rec = record_of(store, dr)
    assert rec["decision"] == "quality_failed"
    assert any(f.startswith(named) for f in rec["quality"]["failures"]), rec["quality"]["failures"]
    assert rec["model"] is None and rec["bias"] is None
    assert store.get_with_etag("registry/adult_income/production.json") == before
    assert store.list("registry/") == versions_before
    assert evidence.verify(store, "adult_income").ok


def test_empty_source_fails_at_collection_and_touches_nothing(
    lifecycle_dag, deployed, tmp_path, monkeypatch, write_policy, adult
):
    empty = tmp_path / "empty.csv"
    adult.head(0).to_csv(empty, index=False)
    store, before = _copy(deployed, tmp_path, monkeypatch, {"dataset.source": str(empty)}, write_policy)
    dr = run_dag(lifecycle_dag)
    assert dr.state == "failed"
    rec = record_of(store, dr)
    assert rec["decision"] == "quality_failed"
    assert any("expect_table_row_count_to_be_between" in f and "observed=0" in f for f in rec["quality"]["failures"])
    assert store.get_with_etag("registry/adult_income/production.json") == before


def test_missing_numbers_the_null_fraction_allows_stop_at_the_quality_gate_under_refuse(
    lifecycle_dag, deployed, tmp_path, monkeypatch, write_policy, adult
):
    """Missing numbers the quality gate's max_null_fraction (5%) allows, with dataset.missing: refuse: the
    quality gate itself refuses them, naming the column and the count, recorded as quality_failed (they
    used to pass the gate and stop a later stage, whose in-process run left no record)."""
    gaps = tmp_path / "gaps.csv"
    df = adult.copy()
    df.loc[df.index % 100 == 0, "age"] = None  # 1% of the rows, under the gate's 5%
    df.to_csv(gaps, index=False)
    store, before = _copy(
        deployed, tmp_path, monkeypatch, {"dataset.source": str(gaps), "quality.max_null_fraction": 0.05}, write_policy
    )
    dr = run_dag(lifecycle_dag)
    rec = record_of(store, dr)
    missing = int(df["age"].isna().sum())
    assert rec["decision"] == "quality_failed" and rec["quality"]["passed"] is False
    assert rec["quality"]["failures"] == [
        f"fairgate_no_missing_feature_values on column 'age': FAILED (unexpected_count={missing}, "
        f"element_count={len(df)}, dataset.missing=refuse)"
    ]
    assert store.get_with_etag("registry/adult_income/production.json") == before  # nothing deployed
    assert evidence.verify(store, "adult_income").ok


def test_unanswered_review_times_out_to_reject(lifecycle_dag, deployed, tmp_path, monkeypatch, write_policy):
    """The scheduler's own timeout sweep resolves the review: no answer means Reject."""
    import threading
    import time

    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    from fairgate_dev.local import awaiting_review

    store, before = _copy(
        deployed,
        tmp_path,
        monkeypatch,
        {"fairness.min_positives": 100000, "fairness.review_timeout_hours": 0.0005},
        write_policy,
    )
    swept = threading.Event()

    def sweep():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not awaiting_review(DAG_ID):
            time.sleep(0.5)
        time.sleep(2.5)  # past the 1.8 s response timeout
        SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()
        swept.set()

    threading.Thread(target=sweep, daemon=True).start()
    dr = lifecycle_dag.test()
    assert swept.is_set() and dr.state == "success"
    rec = record_of(store, dr)
    assert rec["review"]["timed_out"] is True and rec["review"]["reviewer"] is None
    assert rec["decision"] == "rejected"
    assert store.get_with_etag("registry/adult_income/production.json") == before


def test_deploy_twice_then_roll_back_through_the_dag(lifecycle_dag, deployed, tmp_path, monkeypatch, write_policy):
    """v1 deployed (shared fixture), v2 deployed by a second run, then fairgate_rollback → v1."""
    from fairgate_dev.local import load_dag

    store, (pointer_v1, _) = _copy(
        deployed, tmp_path, monkeypatch, {"model.params": {"max_iter": 1000, "C": 0.5}}, write_policy
    )
    v1 = json.loads(pointer_v1)["version"]
    dr2 = run_dag(lifecycle_dag)
    v2 = record_of(store, dr2)["model"]["version"]
    assert v2 != v1 and registry.production_version(store, "adult_income") == v2

    rollback = load_dag("fairgate_rollback").test(run_conf={"version": "", "reason": "audit degraded"})
    assert rollback.state == "success"
    assert registry.production_version(store, "adult_income") == v1
    moves = [
        (
            e["record"].get("decision"),
            (e["record"].get("deployment") or {}).get("version") or e["record"].get("to_version"),
        )
        for e in evidence.entries(store, "adult_income")
        if e["record"]["kind"] != "deployment"  # each deployment's record, written before its pointer moved
    ]
    assert moves == [("deployed", v1), ("deployed", v2), ("rolled_back", v1)]
    deployments = [e["record"] for e in evidence.entries(store, "adult_income") if e["record"]["kind"] == "deployment"]
    assert [(d["version"], d["replaces"], d["gate_outcome"]) for d in deployments] == [
        (v1, None, "pass"),
        (v2, v1, "pass"),
    ]

    failed = load_dag("fairgate_rollback").test(run_conf={"version": "0" * 64, "reason": "typo"})
    assert failed.state == "failed"
    assert registry.production_version(store, "adult_income") == v1
    _bundle_of_the_adult_release_verifies_and_an_edit_fails(store, v1)


def _bundle_of_the_adult_release_verifies_and_an_edit_fails(store, v1):
    """The deployed Adult release as an auditor gets it: its deploying run, the rollback back to it."""
    import zipfile

    from fairgate.governance import bundle

    data = bundle.build(store, "adult_income", v1)
    assert bundle.verify(data).ok
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    index = json.loads(members["bundle.json"])
    # v1's deployment (1) and lifecycle record (2), the rollback back to it (5); v2's (3, 4) are links only
    assert index["release_records"] == [1, 2, 5] and index["deploying_record"] == 2
    datasheet = members["datasheet.md"].decode()
    assert "missing" in datasheet and "datasheet.consent" in datasheet  # the one answer Adult's notes lack
    assert "Extracted by Barry Becker" in datasheet
    assert "Annex IV 2(d)" in members["annex_iv.md"].decode()
    edited = io.BytesIO()
    with zipfile.ZipFile(edited, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content + b"\nApproved by the board.\n" if name == "model_card.md" else content)
    check = bundle.verify(edited.getvalue())
    assert not check.ok and check.problems[0].startswith("model_card.md")
