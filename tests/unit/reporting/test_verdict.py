"""The verdict in plain words: every failed check of a stored Adult run said in a sentence with its
figures (recomputed here from the record against the policy's bounds), the measures defined, no Python
reprs, and the run report's first screen at 1280×800 holding the whole verdict (Chromium)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from fairgate.governance.records import LifecycleRecord
from fairgate.pages import written
from fairgate.policy.loader import load_policy
from fairgate.reporting.report import audit_report, model_card, review_body, run_report
from fairgate.reporting.verdict import audit_verdict, verdict
from fairgate_dev.local import REPO

FIXTURE = REPO / "tests" / "fixtures" / "lifecycle_record_0_1.json"
REPRS = re.compile(r"\[\'|\'\]|\bTrue\b|\bFalse\b|\bNone\b|\bnan\b")


@pytest.fixture(scope="module")
def adult_run():
    return LifecycleRecord.from_json(json.loads(FIXTURE.read_text())), load_policy()


def test_each_failed_check_is_a_sentence_with_its_figures(adult_run):
    record, policy = adult_run
    said = verdict(record, policy)
    assert said["headline"] == "Not deployed: the model already in production, if any, stays."
    outside = []  # by hand: every interval wholly outside its bound
    for key, figures in record.fairness.items():
        for t in policy.fairness.bounds:
            m = figures.get(t.metric)
            low_b, high_b = t.band
            if m and m["ci_high"] is not None and (m["ci_high"] < low_b or m["ci_low"] > high_b):
                outside.append((key, t.metric, m))
    failed = [c for c in said["checks"] if c.endswith("this check failed.")]
    assert len(failed) == len(outside) > 0
    key, metric, m = outside[0]
    first = next(
        c for c in failed if metric.replace("_", " ") in c and c.startswith("For sex not Male, against sex Male")
    )
    assert f"is {m['value']:.2f} (we are 95% sure it lies between {m['ci_low']:.2f} and {m['ci_high']:.2f})" in first
    assert "the policy allows at most 0.10 either way" in first
    defined = {d.split(":")[0].lower() for d in said["definitions"]}
    assert {metric.replace("_", " ") for _, metric, _ in outside} <= defined
    assert said["changes"] and not any(
        REPRS.search(s) for part in said.values() for s in ([part] if isinstance(part, str) else part)
    )


def test_the_pages_open_with_it(adult_run):
    record, policy = adult_run
    page = run_report(record, policy)
    assert page.index("In plain words") < page.index("Data quality")
    card = model_card(record, policy)
    assert card.index("## In plain words") < card.index("## Model details")
    body = review_body(record, policy, report_url="/r", stored_uri="file:///r")
    assert body.startswith("**Not deployed")


def test_the_run_reports_first_screen_holds_the_verdict(adult_run, tmp_path):
    """Chromium at 1280×800: the verdict section ends inside the first screen, nothing overflows sideways."""
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    record, policy = adult_run
    (tmp_path / "report.html").write_text(run_report(record, policy))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto((tmp_path / "report.html").as_uri())
        box = page.locator("section.verdict").bounding_box()
        width = page.evaluate("document.documentElement.scrollWidth")
        if os.environ.get("FAIRGATE_SCREENSHOTS"):
            page.screenshot(path=str(Path(os.environ["FAIRGATE_SCREENSHOTS"]) / "run-report-verdict.png"))
        browser.close()
    assert box is not None and box["y"] + box["height"] <= 800, box
    assert width <= 1280


def test_an_audit_in_plain_words():
    result = {
        "date": "2026-06-01",
        "status": "degraded",
        "rows": 1200,
        "labeled_rows": 0,
        "reasons": [
            "gender: disparate_impact=0.6100 [0.5500, 0.6800] vs [0.8, 1.25]: interval wholly outside the bound "
            "(p=1e-09; holm-adjusted 4e-09 <= 0.05 over 4 tests)",
            "feature 'income' drifted: PSI=0.412 > 0.25",
        ],
        "alerts": {
            "correction": "holm",
            "alpha": 0.05,
            "tests": [
                {
                    "comparison": "gender",
                    "metric": "disparate_impact",
                    "value": 0.61,
                    "ci_low": 0.55,
                    "ci_high": 0.68,
                    "outside": True,
                    "p": 1e-9,
                    "p_adjusted": 4e-9,
                    "alert": True,
                },
                {
                    "comparison": "gender",
                    "metric": "statistical_parity_difference",
                    "value": -0.09,
                    "ci_low": -0.12,
                    "ci_high": -0.06,
                    "outside": False,
                    "p": 0.7,
                    "p_adjusted": 0.7,
                    "alert": False,
                },
            ],
        },
    }
    said = audit_verdict(result)
    assert said["headline"].startswith("Degraded:")
    assert said["checks"] == [
        "For gender, the disparate impact was 0.61 (between 0.55 and 0.68): outside its bound.",
        "feature 'income' drifted: PSI=0.412 > 0.25.",
    ]
    assert [d.split(":")[0] for d in said["definitions"]] == ["Disparate impact"]
    page = audit_report(result, [])
    assert page.index("In plain words") < page.index("Per-group metrics")


def test_values_are_written_as_people_write_them(adult_run):
    assert [written(v) for v in (True, False, None, ["Male"], ("a", "b"), [], 0.5, ">= 25")] == [
        "yes",
        "no",
        "none",
        "Male",
        "a, b",
        "none",
        "0.5000",
        ">= 25",
    ]
    record, policy = adult_run
    card = model_card(record, policy)
    assert "(privileged: Male)" in card and "['Male']" not in card
    assert re.search(r"Training used reweighing weights: (yes|no)\n", card)
    page = run_report(record, policy)
    assert re.search(r"Bias detected: (yes|no); mitigation applied: (yes|no)\.", page)
