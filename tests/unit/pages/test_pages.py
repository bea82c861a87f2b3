"""Text from a reviewer, a policy or the data never becomes markup on a page Fairgate writes or serves.

Every page is rendered with hostile values in every field a person or a data set can fill, then
parsed back: no script element, no event-handler attribute, no image but the inline charts, no
link a value made, and the hostile text shown as text.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from markdown_it import MarkdownIt
from tests.support.pages import EVIL, IMG, SCRIPT, Page, assert_inert

from fairgate import pages
from fairgate.errors import PolicyError
from fairgate.governance.records import LifecycleRecord
from fairgate.policy.loader import parse_policy


def hostile_policy_dict():
    """A policy whose every free-text field a person writes carries markup."""
    thresholds = {"disparate_impact": {"kind": "ratio_band", "min": 0.8, "max": 1.25}}
    return {
        "model_name": "credit_risk",
        "dataset": {
            "source": "unused.csv",
            "label": "outcome",
            "favorable_label": EVIL,
            "features": {"categorical": [f"job {SCRIPT}"], "numeric": ["income"]},
            "feature_labels": {"income": EVIL},
        },
        "protected_attributes": [{"column": "group", "privileged": [EVIL], "allowed": [EVIL, "other"]}],
        "bias": {"thresholds": thresholds},
        "fairness": {"thresholds": thresholds, "min_group_size": 5, "min_positives": 1},
        "model": {"estimator": "logistic_regression", "params": {"max_iter": 100}},
    }


def hostile_policy():
    return parse_policy(hostile_policy_dict())


def _metric(v):
    return {"value": v, "ci_low": v - 0.1, "ci_high": v + 0.1}


def hostile_record():
    """An evidence record whose keys and texts carry markup wherever the data or a person supplies them."""
    key = f"group {EVIL}"
    fairness = {
        key: {
            "counts": {"unprivileged": {"n": 60}, "privileged": {"n": 90}},
            **{
                m: _metric(0.5)
                for m in (
                    "disparate_impact",
                    "statistical_parity_difference",
                    "equal_opportunity_difference",
                    "average_odds_difference",
                    "false_positive_rate_difference",
                    "false_negative_rate_difference",
                )
            },
        }
    }
    base = {
        "n_unprivileged": 60.0,
        "n_privileged": 90.0,
        "base_rate_unprivileged": 0.2,
        "base_rate_privileged": 0.4,
        "disparate_impact": 0.5,
        "statistical_parity_difference": -0.2,
    }
    importance = {
        "metric": "drop in ROC AUC",
        "repeats": 5,
        "rows": 150,
        "skipped": {},
        "overall": {f"col {EVIL}": {"mean": 0.1, "std": 0.01}},
        "by_group": {f"g {EVIL}": {f"col {EVIL}": {"mean": 0.2}}},
    }
    return {
        "kind": "lifecycle",
        "dag_id": "credit_risk_lifecycle",
        "run_id": f"manual__{EVIL}",
        "decision": "deployed",
        "model_name": f"credit {EVIL}",
        "code_version": "0.1.0",
        "policy": {"sha256": "ab" * 32},
        "data": {"uri": f"file:///tmp/{EVIL}", "rows": 150, "sha256": "cd" * 32, "source": EVIL, "period": None},
        "quality": {
            "passed": False,
            "rows": 150,
            "checks": 3,
            "failed": 1,
            "failures": [f"expect_x on column '{EVIL}'"],
        },
        "bias": {
            "detected": True,
            "comparisons": {key: base},
            "warnings": [EVIL],
            "proxies": {
                "attributes": {key: {"all_columns": 0.7, "per_column": {f"col {EVIL}": 0.7}, "flagged": [EVIL]}}
            },
        },
        "mitigation": {"applied": True, "method": "reweighing", "after": {key: {**base, "disparate_impact": 1.0}}},
        "model": {
            "sha256": "ef" * 32,
            "uri": f"file:///tmp/{EVIL}.skops",
            "version": "ef" * 32,
            "estimator": "logistic_regression",
            "weighted": True,
            "rows": {"train": 100, "validation": 20, "test": 30},
        },
        "performance": {"accuracy": 0.8, "balanced_accuracy": 0.75, "roc_auc": 0.85, "selection_rate": 0.3},
        "fairness": fairness,
        "comparison": {
            "candidate": {
                "accuracy": 0.8,
                "balanced_accuracy": 0.75,
                "roc_auc": 0.85,
                "fairness": {key: {"disparate_impact": 0.5}},
            }
        },
        "importance": {"candidate": importance, f"twin {EVIL}": {"overall": {}, "skipped": {EVIL: EVIL}}},
        "gate": {"outcome": "review", "reasons": [f"{key}: insufficient evidence {EVIL}"], "uri": EVIL},
        "review": {
            "choice": "Approve",
            "reviewer": f"mallory {EVIL}",
            "responded_at": "2026-11-24T00:00:00",
            "rationale": EVIL,
        },
    }


def test_run_report_shows_every_outside_value_as_text():
    from fairgate.reporting.report import run_report

    page = run_report(LifecycleRecord.from_json(hostile_record()), hostile_policy())
    parsed = assert_inert(page)
    text = " ".join(" ".join(parsed.text).split())
    # The reviewer's rationale and name in the Approval section, and again inside the model card.
    assert text.count(f"rationale: {EVIL}") == 2 and text.count(f"by mallory {EVIL}") == 2
    assert f"privileged: {EVIL}" in text  # a category value from the policy, in the card's Factors, as written
    assert "<b>Approve</b>" in page  # the page's own markup still renders


def test_model_card_markdown_is_inert_even_where_raw_html_renders():
    """The card is stored as Markdown and read elsewhere; escaped values stay text under any renderer."""
    from fairgate.reporting.report import model_card

    card = model_card(LifecycleRecord.from_json(hostile_record()), hostile_policy())
    assert "\n## Approval\n" in card and "\n| comparison | n unpriv / priv | DI |" in card
    for renderer in (MarkdownIt("commonmark"), MarkdownIt("commonmark", {"html": False}).enable("table")):
        assert_inert(renderer.render(card))


def test_review_request_body_is_inert_markdown():
    from fairgate.reporting.report import review_body

    body = review_body(
        LifecycleRecord.from_json(hostile_record()),
        report_url="/fairgate/report/run/d/r%20x",
        stored_uri=f"file:///{EVIL}",
    )
    rendered = MarkdownIt("commonmark").enable("table").render(body)
    parsed = assert_inert(rendered)
    links = [a["href"] for tag, a in parsed.tags if tag == "a"]
    assert links == ["/fairgate/report/run/d/r%20x"]  # the one link the body means to carry


def test_audit_report_quality_page_overview_and_sign_in_are_inert():
    from fairgate.data.quality import Check, QualityResult
    from fairgate.reporting.report import audit_report, overview_html

    metrics = {"disparate_impact": {"value": 0.7, "ci_low": 0.6, "ci_high": 0.8}}
    rates = {"selection": {"unprivileged": {"value": 0.2}, "privileged": {"value": 0.3}}}
    audit = {
        "date": "2026-11-20",
        "status": "degraded",
        "rows": 10,
        "labeled_rows": 5,
        "window_days": ["2026-11-20"],
        "model_versions": ["ab" * 32],
        "reasons": [EVIL],
        "insufficient": [],
        "fairness": {f"g {EVIL}": {"metrics": metrics, "rates": rates}},
        "drift": {f"col {EVIL}": 0.3},
    }
    assert_inert(audit_report(audit, [audit], None))

    check = Check(
        check="expect_column_values_to_be_in_set", column=f"col {EVIL}", passed=False, detail={"unexpected": EVIL}
    )
    assert_inert(pages.render_html("quality.html.j2", result=QualityResult(False, 10, [check]), title=EVIL))

    data = {
        "models": [
            {
                "name": "credit_risk",
                "production": {"version": "ab" * 32, "since": "now", "action": "deploy", "actor": EVIL},
                "versions": [
                    {
                        "version": "ab" * 32,
                        "registered_at": "now",
                        "gate_outcome": "review",
                        "approver": EVIL,
                        "balanced_accuracy": 0.7,
                        "run_id": EVIL,
                        "dag_id": "credit_risk_lifecycle",
                    }
                ],
                "decisions": [
                    {
                        "recorded_at": "now",
                        "decision": "deployed",
                        "gate": "review",
                        "reasons": [EVIL],
                        "dag_id": "credit_risk_lifecycle",
                        "run_id": EVIL,
                    }
                ],
                "audits": [{k: audit[k] for k in ("date", "status", "rows", "labeled_rows", "reasons", "fairness")}],
            }
        ]
    }
    parsed = assert_inert(overview_html(data, user=EVIL))
    # the run id is part of a link's path, percent-encoded, never a new attribute or element
    assert any(tag == "a" and "%3Cscript%3E" in (a.get("href") or "") for tag, a in parsed.tags)

    page = pages.render_html("sign_in.html.j2", login_url='/auth/login?next="><script>alert(1)</script>')
    parsed = assert_inert(page, shown=())
    assert ("a", {"href": '/auth/login?next="><script>alert(1)</script>'}) in parsed.tags


def test_the_content_security_policy_allows_exactly_the_inline_stylesheet():
    """Report pages need no script; the one stylesheet is allowed by its hash, so pages keep their style."""
    from fairgate.reporting.report import run_report

    csp = dict(part.strip().split(" ", 1) for part in pages.CONTENT_SECURITY_POLICY.split(";"))
    assert csp["default-src"] == "'none'" and "script-src" not in csp  # falls back to 'none'
    assert csp["img-src"] == "data:" and csp["frame-ancestors"] == "'self'"
    for page in (
        run_report(LifecycleRecord.from_json(hostile_record()), hostile_policy()),
        pages.render_html("sign_in.html.j2", login_url="/auth/login"),
    ):
        styles = Page()
        styles.feed(page)
        assert len(styles.styles) == 1
        digest = base64.b64encode(hashlib.sha256(styles.styles[0].encode()).digest()).decode()
        assert csp["style-src"] == f"'sha256-{digest}'"
        assert not re.search(r"\sstyle=", page)  # inline style attributes would need 'unsafe-inline'


def test_markdown_escaping_keeps_text_and_code_spans_literal():
    rendered = MarkdownIt("commonmark").render(
        f"{pages.md_text('a_b *c* [d](e) <f> # | `g`')} {pages.md_code('x ` y')}"
    )
    assert rendered == "<p>a_b *c* [d](e) &lt;f&gt; # | `g` <code>x ` y</code></p>\n"


@pytest.mark.parametrize("name", [IMG, SCRIPT, "a/b", "x y"])
def test_a_model_name_with_markup_or_a_path_is_refused_at_load(name):
    with pytest.raises(PolicyError, match="model_name"):
        parse_policy({**hostile_policy_dict(), "model_name": name})


def test_the_model_card_names_only_the_models_that_were_measured():
    from fairgate.reporting.report import compared_with

    assert compared_with({"candidate": {}}) is None
    assert compared_with({"candidate": {}, "production": {}}) == "Compared with the model in production:"
    assert compared_with({"candidate": {}, "unmitigated": {}, "production": {}}) == (
        "Compared with the same pipeline trained without mitigation and with the model in production:"
    )


def test_search_table_and_front_from_a_hand_built_search():
    from fairgate.reporting.charts import pareto_front
    from fairgate.reporting.report import search_rows, search_summary

    def cand(id_, ba, di, gap, chosen=False, status="fitted", error=None):
        val = {
            "performance": {"balanced_accuracy": ba},
            "fairness": {
                "sex": {"disparate_impact": {"value": di}},
                "race": {"disparate_impact": {"value": 1 / di if di else None}},
            },
        }
        return {
            "id": id_,
            "method": id_.split(".")[0],
            "params": {},
            "status": status,
            "error": error,
            "band_gap": gap,
            "within_bands": gap == 0.0,
            "chosen": chosen,
            "fit_s": 1.0,
            "validation": val if status == "fitted" else {},
        }

    search = {
        "rule": "balanced_accuracy_within_bands",
        "chosen": "reweighing.lr",
        "within_bands": ["reweighing.lr"],
        "note": "1 of 2 candidates inside every band",
        "candidates": [
            cand("none.lr", 0.8, 0.5, 0.3),
            cand("reweighing.lr", 0.75, 0.9, 0.0, chosen=True),
            cand("eg.lr", None, None, None, status="failed", error="infeasible"),
        ],
    }
    rows = search_rows(search)
    # worst DI is the value furthest from 1 in log terms: 0.5 (vs 2.0 equally far: the first found)
    assert rows[0][:5] == ["none.lr", "none", "fitted", "0.8000", "0.5000"]
    assert rows[1][2] == "chosen" and rows[1][6] == "yes"
    assert rows[2][2] == "failed: infeasible"
    assert search_summary(search).startswith("Mitigation search: 3 candidates (1 failed), 1 inside every band")
    # (name, DI, accuracy): b is closer to parity than a and less accurate; c is beaten by b on both.
    assert pareto_front([("a", 0.5, 0.80), ("b", 0.9, 0.75), ("c", 0.7, 0.70)]) == ["b", "a"]


def test_datasheet_contest_body_and_annex_iv_are_inert_markdown():
    """The new documents carry data values, a person's words and record fields: all literal text."""
    import pandas as pd

    from fairgate.data import datasheet
    from fairgate.governance import annex_iv
    from fairgate.monitoring import cases

    raw = hostile_policy_dict()
    raw["datasheet"] = {"motivation": EVIL, "consent": EVIL}
    raw["dataset"]["row_key"] = "case_ref"
    policy = parse_policy(raw)
    df = pd.DataFrame(
        {
            "case_ref": [f"r{i}" for i in range(6)],
            f"job {SCRIPT}": [EVIL, "a"] * 3,
            "income": range(6),
            "group": [EVIL, "other"] * 3,
            "outcome": [EVIL, "x"] * 3,
        }
    )
    sheet = datasheet.datasheet(
        df,
        policy,
        snapshot={"rows": 6, "data": {"sha256": "ab" * 32, "uri": EVIL}},
        quality={"passed": True, "checks": []},
    )
    case = {
        "case_id": f"contest__{EVIL}",
        "kind": "contest",
        "row": EVIL,
        "date": "2026-08-01",
        "model_version": "ab" * 32,
        "decision": 0,
        "score": 0.3,
        "reasons": [{"text": EVIL}],
        "groups": {"group": EVIL},
        "recourse": {"text": EVIL},
        "reason": EVIL,
        "opened_by": EVIL,
        "opened_at": "2026-08-02",
    }
    mapping = annex_iv.for_release({"model": EVIL, "version": "ab" * 32}, [hostile_record()], members=[EVIL])
    for md in (datasheet.markdown(sheet), cases.review_body(case, policy), annex_iv.markdown(mapping)):
        for renderer in (MarkdownIt("commonmark"), MarkdownIt("commonmark", {"html": False}).enable("table")):
            assert_inert(renderer.render(md))


def test_a_threshold_override_is_recorded_with_its_reason_and_shown_on_the_card_the_report_and_the_request(tmp_path):
    """On a policy that is not Adult's: the run's override, its rationale and who asked, in the evidence
    record and, as one sentence naming the policy's own bound, on every page a person reads."""
    from fairgate.reporting.report import model_card, review_body, run_report
    from fairgate.stages.lifecycle import RunInfo, evidence_record
    from fairgate.storage.local import LocalStore

    policy = hostile_policy().with_threshold_overrides(
        {"disparate_impact_min": 0.6}, rationale=f"pilot agreed with the regulator {EVIL}", by="ana"
    )
    record = evidence_record(
        LocalStore(tmp_path), policy, RunInfo("fairgate_lifecycle__credit_risk", "r1"), decision="rejected"
    )
    assert record.overrides == {
        "overrides": {"disparate_impact_min": 0.6},
        "policy_thresholds": {"disparate_impact": {"kind": "ratio_band", "min": 0.8, "max": 1.25}},
        "rationale": f"pilot agreed with the regulator {EVIL}",
        "requested_by": "ana",
    }
    assert LifecycleRecord.from_json(record.to_json()) == record  # kept through the JSON round trip
    expected = "Thresholds overridden for this run, an exception to the policy: disparate_impact min 0.6 (policy: 0.8)"
    record = LifecycleRecord.from_json({**hostile_record(), "overrides": record.overrides})  # a whole run's record
    card = model_card(record, policy)
    in_markdown = expected.replace("_", "\\_")  # Markdown pages escape every value
    assert in_markdown in card and "Requested by ana; rationale: pilot agreed with the regulator" in card
    report = run_report(record, policy)
    assert expected in report and "<script>" not in report
    # on the first screen: above every section of figures, not only beside the approval at the end
    assert report.index("Threshold exception.") < report.index("<h2>Data quality</h2>")
    from fairgate.reporting.overview import _decision

    assert _decision(1, record)["exception"] is True  # the Fairness view flags the run's row
    assert _decision(1, LifecycleRecord.from_json(hostile_record()))["exception"] is False
    assert in_markdown in review_body(record, report_url="http://x/report", stored_uri="file:///r")
    assert (
        evidence_record(LocalStore(tmp_path), hostile_policy(), RunInfo("d", "r2"), decision="rejected").overrides
        is None
    )
    assert "overridden" not in model_card(LifecycleRecord.from_json(hostile_record()), hostile_policy())
