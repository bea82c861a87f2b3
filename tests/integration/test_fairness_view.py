"""The Fairness view in a real browser against a real Airflow api-server.

The api-server runs natively (PostgreSQL metadata DB) with the simple auth manager and one
named user, not the all-admins mode, so signing in is real. Debian's Chromium is driven by
Playwright. The store behind the view holds a deployed model (``deployed``: a lifecycle run)
and a week of scoring and nightly audits on the simulated feed.

Set ``FAIRGATE_SCREENSHOTS`` to a folder to keep screenshots of the pages (``docs/`` uses them).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support.dags import record_of, run_dag
from tests.support.pages import EVIL, IMG, SCRIPT, assert_inert
from tests.support.stack import AirflowStack, require_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
USER, PASSWORD = "reviewer", "correct-horse-battery"
FIRST_DAY = date(2026, 3, 1)
AUDITED = [(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(2, 8)]


@pytest.fixture(scope="module")
def history(deployed, tmp_path_factory):
    """A copy of the deployed store plus eight days of predictions and six nightly audits."""
    from tests.support.policies import AUDIT_POLICY, default_policy_dict

    from fairgate.monitoring import prediction_log
    from fairgate.policy.loader import load_policy
    from fairgate.reporting import report
    from fairgate.stages import monitoring
    from fairgate.storage.local import LocalStore

    src, _, _ = deployed
    root = tmp_path_factory.mktemp("view") / "store"
    shutil.copytree(src, root)
    raw = default_policy_dict()
    raw["fairness"]["thresholds"] = AUDIT_POLICY["fairness"]
    raw["audit"].update(AUDIT_POLICY["audit"])
    policy_path = root.parent / "policy.yaml"
    policy_path.write_text(json.dumps(raw))
    store, policy = LocalStore(root), load_policy(policy_path)
    for i in range(8):
        day = FIRST_DAY + timedelta(days=i)
        scenario = "stable" if i < 4 else "label_shift"
        monitoring.score_day(store, policy, day, prediction_log.incoming(policy, day, scenario=scenario))
    for i in range(2, 8):
        day = FIRST_DAY + timedelta(days=i)
        result = monitoring.audit_day(store, policy, day, run_id=f"test__{day}")
        shown = prediction_log.audit_trend(store, policy.model_name, result)
        prediction_log.save_audit(
            store,
            policy.model_name,
            result,
            report_html=report.audit_report(result, shown, list(policy.fairness.bounds)),
        )
    return root, policy_path


HOSTILE_COLUMN = f"hours {SCRIPT}"


@pytest.fixture(scope="module")
def hostile_run(history, lifecycle_dag, adult, tmp_path_factory):
    """A lifecycle run on the view's store whose data, policy and reviewer all supply markup.

    A privileged category value and a column name carry markup in the data itself, the column's
    plain-language label in the policy, and the review is answered (Reject) with a rationale that
    carries markup. The run ends rejected, so production is untouched.
    """
    import yaml
    from tests.support.policies import default_policy_dict

    from fairgate.storage.local import LocalStore

    root, _ = history
    tmp = tmp_path_factory.mktemp("hostile")
    data = adult.replace({"race": {"White": IMG}}).rename(columns={"hours_per_week": HOSTILE_COLUMN})
    data.to_csv(tmp / "data.csv", index=False)
    raw = default_policy_dict()
    raw["dataset"]["source"] = str(tmp / "data.csv")
    features = raw["dataset"]["features"]
    features["numeric"] = [HOSTILE_COLUMN if c == "hours_per_week" else c for c in features["numeric"]]
    raw["dataset"]["feature_labels"] = {HOSTILE_COLUMN: EVIL}
    raw["quality"]["ranges"][HOSTILE_COLUMN] = raw["quality"]["ranges"].pop("hours_per_week")
    raw["recourse"]["actionable"][HOSTILE_COLUMN] = raw["recourse"]["actionable"].pop("hours_per_week")
    race = next(p for p in raw["protected_attributes"] if p["column"] == "race")
    race["privileged"] = [IMG]
    race["allowed"] = [IMG if v == "White" else v for v in race["allowed"]]
    raw["fairness"]["min_positives"] = 100000  # every comparison lacks evidence: the gate asks a person
    del raw["audit"]["incoming"]  # the simulated Adult feed has no column named like this one
    (tmp / "policy.yaml").write_text(yaml.safe_dump(raw))
    mp = pytest.MonkeyPatch()
    mp.setenv("FAIRGATE_ARTIFACT_ROOT", str(root))
    mp.setenv("FAIRGATE_POLICY", str(tmp / "policy.yaml"))
    try:
        dr = run_dag(lifecycle_dag, review=("Reject", EVIL))
    finally:
        mp.undo()
    rec = record_of(LocalStore(root), dr)
    assert rec["decision"] == "rejected" and rec["review"]["rationale"] == EVIL
    return dr.run_id


@pytest.fixture(scope="module")
def api_server(history, hostile_run, tmp_path_factory):
    require_browser()
    require_postgres()
    root, policy_path = history
    tmp = tmp_path_factory.mktemp("api")
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    stack = AirflowStack(
        tmp,
        {
            "FAIRGATE_ARTIFACT_ROOT": str(root),
            "FAIRGATE_POLICY": str(policy_path),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        },
    )
    try:
        stack.start(components=("api-server",))
        yield stack, root
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _shot(page, name: str) -> None:
    folder = os.environ.get("FAIRGATE_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_anonymous_requests_are_refused(api_server, browser):
    import httpx

    stack, _ = api_server
    base = f"http://127.0.0.1:{stack.port}"
    page = browser.new_context().new_page()
    resp = page.goto(f"{base}/fairgate/")
    assert resp.status == 401
    assert "Sign in to Airflow first" in page.content() and "Production version" not in page.content()
    for path in ("/fairgate/api/overview", f"/fairgate/report/audit/adult_income/{AUDITED[-1]}"):
        assert httpx.get(base + path).status_code == 401
    forged = httpx.get(base + "/fairgate/api/overview", headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 403


def test_signed_in_user_sees_production_model_and_audit_trend(api_server, browser):
    import httpx

    from fairgate.governance import registry
    from fairgate.storage.local import LocalStore

    stack, root = api_server
    base = f"http://127.0.0.1:{stack.port}"
    version = registry.production_version(LocalStore(root), "adult_income")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    # Refused, then signed in through Airflow's own form, and brought back to the view.
    assert page.goto(f"{base}/fairgate/").status == 401
    page.locator("a", has_text="Sign in").click()
    page.locator("input[name=username]").fill(USER)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url(f"{base}/fairgate/", timeout=30_000)

    resp = page.reload()
    assert resp.status == 200
    assert page.locator(".who").inner_text() == f"Signed in as {USER}"
    assert page.locator("code.production").inner_text() == version[:12]
    trend = page.locator("img.trend")
    assert trend.evaluate("img => img.complete && img.naturalWidth > 300 && img.naturalHeight > 200")
    statuses = page.locator("table.audits span.status").all_inner_texts()
    stored = [
        json.loads((root / f"audits/model=adult_income/date={d}/audit.json").read_text())["status"] for d in AUDITED
    ]
    assert statuses == stored[::-1]  # newest first
    assert stored[0] == "healthy" and stored[-1] == "degraded"  # the label shift of the last days shows
    _shot(page, "fairness-view.png")

    page.locator("table.audits a", has_text="report").first.click()  # the newest audit
    assert f"Fairness audit {AUDITED[-1]}" in page.locator("h1").inner_text()
    page.goto(f"{base}/fairgate/")
    deployed_row = page.locator("table.decisions tr", has=page.locator("td", has_text="deployed"))
    deployed_row.locator("a", has_text="report").first.click()  # the lifecycle run that deployed
    assert page.locator("h1").first.inner_text() == "adult_income: deployed"
    assert page.locator("img").count() == 6  # five charts of the run's figures and its Shapley values
    _shot(page, "run-report.png")

    # Inside the Airflow UI: the nav entry opens the view in an iframe, with the same session.
    page.goto(f"{base}/plugin/fairness")
    frame = page.frame_locator("iframe")
    assert frame.locator("code.production").inner_text(timeout=30_000) == version[:12]
    _shot(page, "fairness-view-in-airflow.png")

    # The same data for tools, with a token from Airflow's own token endpoint.
    token = httpx.post(f"{base}/auth/token", json={"username": USER, "password": PASSWORD}).json()["access_token"]
    data = httpx.get(f"{base}/fairgate/api/overview", headers={"Authorization": f"Bearer {token}"}).json()
    assert data["user"] == USER and data["models"][0]["production"]["version"] == version
    assert [a["date"] for a in data["models"][0]["audits"]] == AUDITED  # audits are per model
    context.close()


def _signed_in_token(base: str) -> dict[str, str]:
    import httpx

    token = httpx.post(f"{base}/auth/token", json={"username": USER, "password": PASSWORD}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_every_page_shows_markup_from_reviewers_policies_and_data_as_text(api_server, hostile_run):
    """Rationale, category value, column name and label with markup: escaped on every page, CSP on every response."""
    import httpx

    from fairgate.pages import SECURITY_HEADERS
    from fairgate.reporting.report import run_report_path

    stack, _ = api_server
    base = f"http://127.0.0.1:{stack.port}"
    auth = _signed_in_token(base)
    report = httpx.get(f"{base}/fairgate/{run_report_path('fairgate_lifecycle', hostile_run)}", headers=auth)
    assert report.status_code == 200
    parsed = assert_inert(report.text, shown=(f"rationale: {EVIL}", f"privileged: {IMG}", HOSTILE_COLUMN))
    assert [t for t, _ in parsed.tags].count("img") == 6  # the charts, and nothing a value made
    pages = {
        "report": report,
        "overview": httpx.get(f"{base}/fairgate/", headers=auth),
        "audit": httpx.get(f"{base}/fairgate/report/audit/adult_income/{AUDITED[-1]}", headers=auth),
        "json": httpx.get(f"{base}/fairgate/api/overview", headers=auth),
        "sign-in": httpx.get(f"{base}/fairgate/", headers={"Accept": "text/html"}),
        "missing": httpx.get(f"{base}/fairgate/report/audit/adult_income/1999-01-01", headers=auth),
    }
    assert [r.status_code for r in pages.values()] == [200, 200, 200, 200, 401, 404]
    for name, resp in pages.items():
        for header, value in SECURITY_HEADERS.items():
            assert resp.headers.get(header) == value, (name, header)
        if resp.headers["content-type"].startswith("text/html"):
            assert_inert(resp.text, shown=())
    assert "Sign in to Airflow first" in pages["sign-in"].text


def test_no_script_runs_in_the_browser_on_any_page(api_server, hostile_run, browser):
    """In Chromium, signed in: no dialog opens on the hostile run's report or the view; pages keep their style."""
    from fairgate.reporting.report import run_report_path

    stack, _ = api_server
    base = f"http://127.0.0.1:{stack.port}"
    context = browser.new_context()
    context.set_extra_http_headers(_signed_in_token(base))
    page = context.new_page()
    dialogs, violations = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    for path in (run_report_path("fairgate_lifecycle", hostile_run), "", f"report/audit/adult_income/{AUDITED[-1]}"):
        assert page.goto(f"{base}/fairgate/{path}").status == 200
        page.wait_for_load_state("load")
        assert page.locator("table").first.evaluate("t => getComputedStyle(t).borderCollapse") == "collapse"
    page.goto(f"{base}/fairgate/{run_report_path('fairgate_lifecycle', hostile_run)}")
    assert IMG in page.locator("p.approval").inner_text()
    page.wait_for_timeout(500)
    assert dialogs == [] and violations == []
    context.close()
