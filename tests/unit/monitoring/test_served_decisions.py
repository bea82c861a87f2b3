"""Decisions served online reach the audit: logged before they are answered, compacted with the review cap,
audited with batch decisions, contested, kept as long as the policy says; and a server that follows
production. Synthetic credit data (not Adult); every audited figure is recomputed from what the client
received."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from tests.support.policies import synthetic_credit_policy

from fairgate.errors import LogUnavailable, NotApproved
from fairgate.governance import evidence, registry
from fairgate.integrations import serving
from fairgate.integrations.following import Follower
from fairgate.monitoring import cases, prediction_log, retention, served_log
from fairgate.monitoring.served_log import DecisionLogger, StoreSink
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore
from fairgate_dev.synthetic import credit_applications

pytestmark = pytest.mark.lifecycle
DAYS = [date(2026, 7, 1) + timedelta(days=i) for i in range(3)]
MARGIN, CAP = 0.1, 4


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """Two deployed versions of the synthetic credit model (the second in production), with review triggers."""
    folder = tmp_path_factory.mktemp("served")
    path, data = synthetic_credit_policy(
        folder,
        3000,
        seed=5,
        review_triggers={"score_margin": MARGIN, "daily_cap": CAP},
        audit={
            "outcomes": str(folder / "outcomes"),
            "label_lag_days": 0,
            "window_days": 3,
            "min_new_decisions": 100,
            "retention_days": 183,
        },
    )
    store = LocalStore(folder / "store")
    policy = load_policy(path)
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="v1")).decision == "deployed"
    (folder / "credit.csv").write_text(data.sample(frac=0.9, random_state=1).to_csv(index=False))
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="v2")).decision == "deployed"
    versions = [m["version"] for m in registry.list_versions(store, "credit")]
    return {"folder": folder, "path": path, "policy": policy, "store": store, "versions": versions}


def _served(deployed, store, version, name):
    folder = serving.write_bundle(store, deployed["policy"], version, deployed["folder"] / name)
    return serving.load({p.name: str(p) for p in folder.iterdir()}, version=version)


def _copy(deployed, tmp_path):
    """A store of its own for one test (a copy of the deployed one)."""
    import shutil

    shutil.copytree(deployed["folder"] / "store", tmp_path / "store")
    return LocalStore(tmp_path / "store")


def _applications(n: int, seed: int) -> pd.DataFrame:
    feed = credit_applications(n, seed=seed)
    feed["application_id"] = feed["application_id"].str.replace("app-", f"web{seed}-")
    return feed


def test_three_days_served_are_audited_as_the_clients_received_them(deployed, tmp_path):
    store, policy = _copy(deployed, tmp_path), deployed["policy"]
    production = registry.production_version(store, "credit")
    served = _served(deployed, store, production, "bundle")
    logger = DecisionLogger.for_policy(policy, store)
    received, sent = [], []
    for d, day in enumerate(DAYS):
        feed = _applications(60, seed=40 + d)
        sent.append(feed)
        for i in range(6):  # six requests of ten records a day
            now = datetime(day.year, day.month, day.day, 9 + i, tzinfo=UTC)
            records = feed.iloc[i * 10 : (i + 1) * 10].drop(columns=["approved"])
            decided = serving.decide(served, records, now=now)
            assert logger.log(decided.log, decided.day) is True
            received.append(decided.answer.assign(day=day.isoformat(), gender=records["gender"].to_numpy()))
        # the outcomes arrive as a folder of the predictions' days (row key and label)
        out = deployed["folder"] / "outcomes" / f"date={day}"
        out.mkdir(parents=True, exist_ok=True)
        feed[["application_id", "approved"]].to_csv(out / "part.csv", index=False)
    answers = pd.concat(received, ignore_index=True)
    truth = pd.concat(sent, ignore_index=True).set_index("application_id")["approved"]
    assert (answers["model_version"] == production).all() and answers["decision_id"].is_unique
    # each request is one part, written before its answer
    assert len(store.list(f"predictions/model=credit/date={DAYS[0]}/online/")) == 6

    # one contested decision: the contest finds the served decision, as the client received it
    contested = answers.iloc[17]
    case = cases.open_contest(
        store, policy, contested["application_id"], reason="my income is wrong", opened_by="applicant"
    )
    assert case["model_version"] == production and case["decision"] == int(contested["decision"])
    assert case["score"] == pytest.approx(contested["score"]) and case["date"] == contested["day"]

    # ingestion: parts compacted per day, the flagged decisions queued up to the daily cap, most borderline first
    done = monitoring.ingest(store, policy, run_id="i1")
    assert done["new_decisions"] == 180 and done["trigger"] is True and done["since_trigger"] == 180
    for day, compacted in zip(DAYS, done["compacted"], strict=True):
        of_day = answers[answers["day"] == day.isoformat()]
        flagged = of_day[of_day["review"] == "pending"]
        assert (flagged["score"] - policy.model.decision_threshold).abs().le(MARGIN).all()
        assert compacted["parts"] == 6 and compacted["decisions"] == 60
        assert compacted["pending"] == min(CAP, len(flagged)) and compacted["over_cap"] == max(len(flagged) - CAP, 0)
        assert store.list(f"predictions/model=credit/date={day}/online/") == []  # the parts are gone
        nearest = flagged.assign(d=(flagged["score"] - 0.5).abs()).sort_values(["d", "application_id"]).head(CAP)
        opened = {c["row"] for c in cases.cases_of(store, "credit") if c["kind"] == "review" and c["date"] == str(day)}
        assert opened == set(nearest["application_id"])
    assert set(done["review_cases"]) >= {c["case_id"] for c in cases.cases_of(store, "credit") if c["kind"] == "review"}

    # the audit of the window: every figure recomputed from the answers and the outcomes
    result = monitoring.audit_day(store, policy, DAYS[-1], run_id="a")
    assert result["rows"] == 180 and result["channels"] == {"online": 180} and result["unlogged_decisions"] == 0
    women = answers["gender"] == "female"
    sel_w, sel_m = answers.loc[women, "decision"].mean(), answers.loc[~women, "decision"].mean()
    metrics = result["fairness"]["gender"]["metrics"]
    assert metrics["statistical_parity_difference"]["value"] == pytest.approx(sel_w - sel_m)
    assert metrics["disparate_impact"]["value"] == pytest.approx(sel_w / sel_m)
    y = truth.loc[answers["application_id"]].to_numpy()
    assert result["labeled_rows"] == 180
    tpr = [answers["decision"].to_numpy()[mask & (y == 1)].mean() for mask in (women.to_numpy(), ~women.to_numpy())]
    assert metrics["equal_opportunity_difference"]["value"] == pytest.approx(tpr[0] - tpr[1])
    assert result["review_queue"]["pending"] == sum(c["pending"] for c in done["compacted"])
    assert result["contests"]["contested"] == 1

    # a batch day beside the served ones: counted per channel, figures of the union
    batch = _applications(200, seed=50)
    monitoring.score_day(store, policy, DAYS[-1], batch)
    both = monitoring.audit_day(store, policy, DAYS[-1], run_id="b")
    assert both["channels"] == {"batch": 200, "online": 180} and both["rows"] == 380
    log = prediction_log.read_frame(store, prediction_log.partition_key("predictions", "credit", DAYS[-1]))
    decisions = np.concatenate([answers["decision"].to_numpy(), log["decision"].to_numpy()])
    female = np.concatenate([women.to_numpy(), (log["gender"] == "female").to_numpy()])
    spd = decisions[female].mean() - decisions[~female].mean()
    assert both["fairness"]["gender"]["metrics"]["statistical_parity_difference"]["value"] == pytest.approx(spd)


def test_compaction_never_rewrites_what_was_read_and_counts_an_interrupted_one_once(deployed, tmp_path, monkeypatch):
    store, policy = _copy(deployed, tmp_path), deployed["policy"]
    served = _served(deployed, store, registry.production_version(store, "credit"), "bundle")
    sink = StoreSink(store, "credit")
    feed = _applications(30, seed=60)
    day = DAYS[0]
    for i in range(3):
        decided = serving.decide(served, feed.iloc[i * 10 : (i + 1) * 10], now=datetime(2026, 7, 1, 8, i, tzinfo=UTC))
        sink.write(decided.log, decided.day)
    first, _ = served_log.compact(store, policy, day)
    before = store.get(first["key"])
    late = datetime(2026, 7, 1, 9, tzinfo=UTC)  # the same day, later: a part is a day's decisions
    decided = serving.decide(served, feed.iloc[:5].assign(application_id=[f"late-{i}" for i in range(5)]), now=late)
    sink.write(decided.log, day)
    second, _ = served_log.compact(store, policy, day)
    assert second["key"] != first["key"] and second["decisions"] == 5
    assert store.get(first["key"]) == before  # the first compacted file, as an audit read it
    # a compaction cut off after writing its file (the process dies before deleting the parts): they count once
    decided = serving.decide(served, feed.iloc[5:10].assign(application_id=[f"cut-{i}" for i in range(5)]), now=late)
    sink.write(decided.log, day)

    def killed(key):
        raise KeyboardInterrupt("the process died here")

    monkeypatch.setattr(store, "delete", killed)
    with pytest.raises(KeyboardInterrupt):
        served_log.compact(store, policy, day)
    monkeypatch.undo()
    assert len(store.list(f"predictions/model=credit/date={day}/online/")) == 1  # the part is still there
    assert len(served_log.read_online(store, served_log.rules_for(store, policy), day)) == 40
    third, _ = served_log.compact(store, policy, day)
    assert third["decisions"] == 0 and third["key"] is None and third["parts"] == 1
    assert len(served_log.read_online(store, served_log.rules_for(store, policy), day)) == 40


def test_a_log_that_cannot_be_written_refuses_the_request_or_counts_the_loss(deployed, tmp_path):
    store, policy = _copy(deployed, tmp_path), deployed["policy"]
    served = _served(deployed, store, registry.production_version(store, "credit"), "bundle")
    (tmp_path / "not-a-folder").write_text("a file where the log's folder should be")
    broken = StoreSink(LocalStore(tmp_path / "not-a-folder"), "credit")  # every write fails (NotADirectoryError)
    decided = serving.decide(served, _applications(7, seed=61), now=datetime(2026, 7, 2, 12, tzinfo=UTC))
    with pytest.raises(LogUnavailable, match="could not be written.*on_log_failure: refuse"):
        DecisionLogger(policy=policy, store=store, sink=broken).log(decided.log, decided.day)
    assert served_log.losses(store, "credit", ["2026-07-02"]) == 0  # refused: nothing was answered
    counting = lifecycle_policy(deployed, {"on_log_failure": "answer"})
    assert DecisionLogger(policy=counting, store=store, sink=broken).log(decided.log, decided.day) is False
    assert served_log.losses(store, "credit", ["2026-07-02"]) == 7
    StoreSink(store, "credit").write(decided.log.head(3), decided.day)  # three others logged that day
    result = monitoring.audit_day(store, counting, date(2026, 7, 2), run_id="a")
    assert result["unlogged_decisions"] == 7 and result["rows"] == 3
    assert any("7 served decision(s) in the window were answered but not logged" in s for s in result["insufficient"])


def lifecycle_policy(deployed, audit: dict):
    from tests.support.policies import edited

    return edited(deployed["policy"], {f"audit.{k}": v for k, v in audit.items()})


def test_the_server_follows_a_rollback_without_a_failed_request(deployed, tmp_path):
    store, policy = _copy(deployed, tmp_path), deployed["policy"]
    v1, v2 = deployed["versions"]
    assert registry.production_version(store, "credit") == v2
    follower = Follower(_served(deployed, store, v2, "bundle"), store, "credit", workdir=tmp_path)
    assert follower.check() is False  # nothing moved
    records = _applications(5, seed=62).drop(columns=["approved"])
    answered, failed, stop = [], [], threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                answered.append(serving.answer(follower.served, records)["model_version"].iloc[0])
            except Exception as exc:
                failed.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        while len(answered) < 5:
            pass
        lifecycle.rollback(store, policy, to_version=v1, actor="ops", reason="bad release", run_id="rb1")
        assert follower.check() is True
        count = len(answered)
        while len(answered) < count + 5:
            pass
    finally:
        stop.set()
        thread.join()
    assert failed == []
    switched = answered.index(v1)
    assert set(answered[:switched]) == {v2} and set(answered[switched:]) == {v1}  # one switch, never back
    assert follower.served.version == v1 and follower.swaps == [v1]
    # a version whose model file changed in the store is not served: the server keeps what it has
    key = f"{registry.version_prefix('credit', v2)}/model.skops"
    original = store.get(key)
    store.put(key, original[:-4] + b"EVIL")
    with pytest.raises(NotApproved, match="model.skops"):  # nor is it rolled back to
        lifecycle.rollback(store, policy, to_version=v2, actor="ops", reason="back", run_id="rb2")
    store.put(key, original)
    lifecycle.rollback(store, policy, to_version=v2, actor="ops", reason="back", run_id="rb2")
    store.put(key, original[:-4] + b"EVIL")  # changed after the rollback was recorded
    assert follower.check() is False and follower.served.version == v1
    store.put(key, original)
    assert follower.check() is True and follower.served.version == v2  # mended: now it is served


def test_retention_removes_old_served_days_and_records_it(deployed, tmp_path):
    store, policy = _copy(deployed, tmp_path), deployed["policy"]
    served = _served(deployed, store, registry.production_version(store, "credit"), "bundle")
    logger = DecisionLogger.for_policy(policy, store)
    old, recent = date(2026, 1, 5), date(2026, 7, 1)
    for day in (old, recent):
        decided = serving.decide(served, _applications(4, seed=63), now=datetime.combine(day, datetime.min.time(), UTC))
        logger.log(decided.log, decided.day)
    served_log.compact(store, policy, old)  # one day compacted, the other still in parts: both kinds removed
    done = retention.apply(store, policy, date(2026, 7, 10), run_id="ret")
    assert done["removed"] == [old.isoformat()]
    assert served_log.read_online(store, served_log.rules_for(store, policy), old) is None
    assert len(served_log.read_online(store, served_log.rules_for(store, policy), recent)) == 4
    record = evidence.find(store, "credit", "ret", kind="retention")["record"]
    assert record["removed"] == [old.isoformat()]


def test_a_corrupt_part_is_quarantined_named_and_the_audit_and_compaction_go_on(deployed, tmp_path):
    store, policy = _copy(deployed, tmp_path), deployed["policy"]
    served = _served(deployed, store, registry.production_version(store, "credit"), "bundle")
    for seed in (64, 65):
        decided = serving.decide(served, _applications(3, seed=seed), now=datetime(2026, 7, 3, 9, tzinfo=UTC))
        StoreSink(store, "credit").write(decided.log, decided.day)
    part, kept = store.list("predictions/model=credit/date=2026-07-03/online/")
    cut = store.get(part)[:-10]
    store.put(part, cut)  # cut short
    result = monitoring.audit_day(store, policy, date(2026, 7, 3), run_id="a")
    [moved] = result["quarantined"]
    assert moved["key"] == part and "sha256 its name carries" in moved["why"]
    assert store.get(moved["moved_to"]) == cut  # set aside, not lost
    assert result["channels"] == {"online": 3} and any("quarantined" in r for r in result["insufficient"])
    done, _ = served_log.compact(store, policy, date(2026, 7, 3))
    assert (done["parts"], done["decisions"], done["quarantined"]) == (1, 3, [])
    assert done["merged"] == {kept: kept.rsplit("-", 1)[-1].removesuffix(".json")}
