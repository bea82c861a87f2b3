"""The prediction log's retention on synthetic credit data: ten scored days, a retention of five; the
days past it are removed and recorded, except one with an open contest and those inside the audit
window; the kept days still audit."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
import yaml
from tests.support.policies import synthetic_credit_policy

from fairgate.errors import PolicyError
from fairgate.governance import evidence
from fairgate.monitoring import cases, retention
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore
from fairgate_dev.synthetic import write_feed

pytestmark = pytest.mark.lifecycle
D0 = date(2026, 7, 1)


@pytest.fixture
def scored(tmp_path):
    write_feed(str(tmp_path / "feed"), D0.isoformat(), 10, 150, seed=91)
    path, _ = synthetic_credit_policy(
        tmp_path,
        2000,
        seed=90,
        audit={"incoming": str(tmp_path / "feed"), "window_days": 2, "label_lag_days": 1, "retention_days": 5},
    )
    store = LocalStore(tmp_path / "store")
    policy = load_policy(path)
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r")).decision == "deployed"
    for i in range(10):
        monitoring.score(store, policy, D0 + timedelta(days=i))
    return store, policy, path


def _days(store):
    return sorted(retention.scored_days(store, "credit"))


def test_days_past_the_period_are_removed_except_one_with_an_open_contest(scored):
    store, policy, _ = scored
    held = D0 + timedelta(days=1)
    log = pd.read_parquet(store.root / f"predictions/model=credit/date={held}/part.parquet")
    cases.open_contest(
        store, policy, str(log["application_id"].iloc[0]), reason="please look again", day=held, opened_by="t"
    )
    today = D0 + timedelta(days=9)
    done = retention.apply(store, policy, today, run_id="ret-1")
    # by hand: cutoff 9 - 5 = day 4; days 0-3 are past it; the window (2 + 1 days) starts at day 6
    assert done["cutoff"] == (D0 + timedelta(days=4)).isoformat()
    assert done["removed"] == [(D0 + timedelta(days=i)).isoformat() for i in (0, 2, 3)]
    assert done["kept"] == {held.isoformat(): "a contest or review of one of its decisions is open"}
    assert _days(store) == [(D0 + timedelta(days=i)).isoformat() for i in (1, 4, 5, 6, 7, 8, 9)]
    [record] = [e["record"] for e in evidence.entries(store, "credit") if e["record"]["kind"] == "retention"]
    assert record["removed"] == done["removed"] and record["retention_days"] == 5 and record["cutoff"] == done["cutoff"]
    assert evidence.verify(store, "credit").ok
    assert monitoring.audit_day(store, policy, today, run_id="a")["rows"] == 300  # the window's two days, untouched


def test_a_day_inside_the_audit_window_is_kept_whatever_the_period(scored, tmp_path):
    store, _, path = scored
    raw = yaml.safe_load(path.read_text())
    raw["audit"].update({"retention_days": 1, "window_days": 7})
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(PolicyError, match="'audit.retention_days' is 1, shorter than the audit window"):
        load_policy(tmp_path / "short.yaml")  # refused as a policy now; retention holds the window all the same:
    loaded = load_policy(path)
    policy = loaded.model_copy(
        update={"audit": loaded.audit.model_copy(update={"retention_days": 1, "window_days": 7})}
    )
    done = retention.apply(store, policy, D0 + timedelta(days=9), run_id="ret-2")
    # cutoff day 8: days 0-7 past it; the window (7 + 1 days) starts at day 1, so only day 0 goes
    assert done["removed"] == [D0.isoformat()]
    assert set(done["kept"]) == {(D0 + timedelta(days=i)).isoformat() for i in range(1, 8)}
    assert all(why.startswith("inside the audit window") for why in done["kept"].values())


def test_nothing_past_the_period_records_nothing(scored):
    store, policy, _ = scored
    done = retention.apply(store, policy, D0 + timedelta(days=4), run_id="ret-3")
    assert done == {
        "cutoff": (D0 - timedelta(days=1)).isoformat(),
        "retention_days": 5,
        "removed": [],
        "kept": {},
        "seq": None,
        "refused": None,
    }
    assert not [e for e in evidence.entries(store, "credit") if e["record"]["kind"] == "retention"]


def test_a_run_dated_in_the_future_removes_nothing_and_says_so(scored):
    """An audit triggered with a logical date a year ahead: before, every scored day was deleted (the cut-off
    counted from that date), today's decisions inside the real window included."""
    store, policy, _ = scored
    before = _days(store)
    today = D0 + timedelta(days=9)
    done = retention.apply(store, policy, today + timedelta(days=365), run_id="ret-future", now=today)
    assert done["removed"] == [] and done["seq"] is None
    assert "after today" in done["refused"] and "nothing was removed" in done["refused"]
    assert _days(store) == before
    # the real clock, for a real day in the past: the cut-off from that day, as before
    assert retention.apply(store, policy, today, run_id="ret-now", now=today)["removed"]


def test_the_intent_is_recorded_before_anything_is_deleted_and_a_retry_finishes_it(scored, monkeypatch):
    store, policy, _ = scored
    today = D0 + timedelta(days=9)

    def no_append(*args, **kwargs):
        raise OSError("the evidence log cannot be written")

    monkeypatch.setattr(evidence, "append", no_append)
    with pytest.raises(OSError, match="cannot be written"):
        retention.apply(store, policy, today, run_id="ret-4")
    monkeypatch.undo()
    assert len(_days(store)) == 10  # no record, so nothing deleted

    deleted: list[str] = []
    real_delete = store.delete

    def killed_after_one(key):
        if deleted:
            raise KeyboardInterrupt("the worker died here")
        deleted.append(key)
        real_delete(key)

    monkeypatch.setattr(store, "delete", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        retention.apply(store, policy, today, run_id="ret-4")
    monkeypatch.undo()
    [intent] = [e for e in evidence.entries(store, "credit") if e["record"]["kind"] == "retention"]
    planned = intent["record"]["files"]
    assert sorted(planned) == intent["record"]["removed"] == [(D0 + timedelta(days=i)).isoformat() for i in range(4)]
    for files in planned.values():  # each file named with its sha256 before it went
        assert all(len(sha) == 64 for sha in files.values())
    assert not [e for e in evidence.entries(store, "credit") if e["record"]["kind"] == "retention_done"]
    done = retention.apply(store, policy, today, run_id="ret-4")  # the retry finishes the same intent
    assert done["seq"] == intent["seq"] and done["removed"] == intent["record"]["removed"]
    [confirmed] = [e["record"] for e in evidence.entries(store, "credit") if e["record"]["kind"] == "retention_done"]
    assert confirmed["intent_seq"] == intent["seq"]
    assert _days(store) == [(D0 + timedelta(days=i)).isoformat() for i in range(4, 10)]
