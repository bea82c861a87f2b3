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
from tests.dags.conftest import deployed, lifecycle_dag  # noqa: F401  (fixtures)
from tests.integration.stack import AirflowStack, require_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
USER, PASSWORD = "reviewer", "correct-horse-battery"
FIRST_DAY = date(2026, 3, 1)
AUDITED = [(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(2, 8)]


def _require_browser():
    if not Path(CHROMIUM).exists():
        msg = "Debian's chromium is not installed (apt-get install chromium); .ci/run installs it."
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def history(deployed, tmp_path_factory):  # noqa: F811
    """A copy of the deployed store plus eight days of predictions and six nightly audits."""
    from tests.conftest import default_policy_dict
    from tests.dags.test_monitoring_e2e import AUDIT_POLICY

    from fairgate import monitoring
    from fairgate.policy import load_policy
    from fairgate.store import LocalStore

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
        monitoring.score_day(store, policy, day, monitoring.incoming(policy, day, scenario=scenario))
    for i in range(2, 8):
        day = FIRST_DAY + timedelta(days=i)
        result = monitoring.audit_day(store, policy, day, run_id=f"test__{day}")
        shown = monitoring.audit_history(store, until=day) + [result]
        monitoring.save_audit(store, result, report_html=monitoring.audit_report(result, shown,
                                                                                list(policy.fairness_thresholds)))
    return root, policy_path


@pytest.fixture(scope="module")
def api_server(history, tmp_path_factory):
    _require_browser()
    require_postgres()
    root, policy_path = history
    tmp = tmp_path_factory.mktemp("api")
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    stack = AirflowStack(tmp, {
        "FAIRGATE_ARTIFACT_ROOT": str(root), "FAIRGATE_POLICY": str(policy_path),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    })
    try:
        stack.start(components=("api-server",))
        yield stack, root
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser():
    _require_browser()
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
    for path in ("/fairgate/api/overview", f"/fairgate/report/audit/{AUDITED[-1]}"):
        assert httpx.get(base + path).status_code == 401
    forged = httpx.get(base + "/fairgate/api/overview", headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 403


def test_signed_in_user_sees_production_model_and_audit_trend(api_server, browser):
    import httpx

    from fairgate import registry
    from fairgate.store import LocalStore

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
    stored = [json.loads((root / f"audits/date={d}/audit.json").read_text())["status"] for d in AUDITED]
    assert statuses == stored[::-1]  # newest first
    assert stored[0] == "healthy" and stored[-1] == "degraded"  # the label shift of the last days shows
    _shot(page, "fairness-view.png")

    page.locator("table.audits a", has_text="report").first.click()  # the newest audit
    assert f"Fairness audit {AUDITED[-1]}" in page.locator("h1").inner_text()
    page.goto(f"{base}/fairgate/")
    page.locator("table.decisions a", has_text="report").first.click()  # the lifecycle run
    assert page.locator("h1").first.inner_text() == "adult_income: deployed"
    assert page.locator("img").count() == 5
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
    assert [a["date"] for a in data["audits"]] == AUDITED
    context.close()
