"""``make airflow`` as a user runs it: four real Airflow components, a user who signs in, a review
answered by that user in the browser, and the ``env`` file the README's commands source.

The lifecycle runs on the bundled Adult data, triggered through the REST API with the signed-in
user's token; a DI floor inside the sex DI's interval makes the gate ask for review, which the
same user answers on Airflow's Required Action page (headless Chromium, Playwright); the evidence
records that user as the reviewer (not "Anonymous") with the rationale typed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support.stack import _free_port

from fairgate.governance import evidence
from fairgate.storage.local import LocalStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]
COMMAND = [sys.executable, "-m", "fairgate_dev.local_airflow"]  # what `make airflow` runs


def _wait(check, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:  # not up yet
            found = None
        if found:
            return found
        time.sleep(1)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(log.glob("*.log")))
    pytest.fail(f"{what} did not happen in {timeout:.0f} s\n{logs}")


def _answer_in_the_browser(base: str, password: str, run_id: str, choice: str, rationale: str) -> None:
    """Sign in on Airflow's page, open the review's Required Action, write the rationale, press the choice."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base}/")
            page.locator("input[name=username]").fill("reviewer")
            page.locator("input[name=password]").fill(password)
            page.locator("button[type=submit]").click()
            page.wait_for_url(lambda url: "login" not in url, timeout=30_000)
            page.goto(f"{base}/dags/fairgate_lifecycle/runs/{run_id}/tasks/human_review/required_actions")
            page.locator("#element_rationale").fill(rationale, timeout=60_000)
            page.get_by_role("button", name=choice, exact=True).click()
            page.wait_for_timeout(2000)  # the answer is sent before the page is left
        finally:
            browser.close()


def test_make_airflow_runs_a_review_answered_in_the_browser_by_the_signed_in_user(tmp_path):
    require_browser()
    import httpx

    home, store_root, port = tmp_path / "airflow", tmp_path / "artifacts", _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FAIRGATE_"))}
    env["FAIRGATE_MLFLOW"] = "off"
    proc = subprocess.Popen(
        [*COMMAND, "--airflow-home", str(home), "--artifact-root", str(store_root), "--port", str(port)],
        env=env,
        stdout=(tmp_path / "make-airflow.out").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(
            lambda: httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200,
            240,
            "the API",
            home / "components",
        )
        printed = (tmp_path / "make-airflow.out").read_text()
        password = json.loads((home / "simple_auth_manager_passwords.json").read_text())["reviewer"]
        assert f"sign in as reviewer / {password}" in printed
        assert httpx.get(f"{base}/api/v2/dags", timeout=10).status_code == 401  # nobody is an admin unsigned
        token = httpx.post(
            f"{base}/auth/token", json={"username": "reviewer", "password": password}, timeout=10
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}

        def api(method: str, path: str, **kw):
            resp = httpx.request(method, f"{base}/api/v2{path}", headers=auth, timeout=30, **kw)
            resp.raise_for_status()
            return resp.json()

        _wait(
            lambda: api("GET", "/dags/fairgate_lifecycle"),
            240,
            "the dag-processor parsing the DAGs",
            home / "components",
        )
        api("PATCH", "/dags/fairgate_lifecycle", json={"is_paused": False})
        run_id = api(
            "POST",
            "/dags/fairgate_lifecycle/dagRuns",
            json={
                "logical_date": None,
                "conf": {
                    "threshold_overrides": {"disparate_impact_min": 0.57},
                    "override_rationale": "A floor inside the interval, so that the gate asks a person.",
                },
            },
        )["dag_run_id"]
        ti = f"/dags/fairgate_lifecycle/dagRuns/{run_id}/taskInstances/human_review"
        _wait(lambda: api("GET", ti)["state"] == "awaiting_input", 900, "the review request", home / "components")
        # A person reads the request first. An answer within a second of the deferral races Airflow's
        # executor, which then finds the resumed task queued and fails it ("state mismatch").
        time.sleep(5)
        _answer_in_the_browser(base, password, run_id, "Reject", "Interval too wide for women.")
        run = f"/dags/fairgate_lifecycle/dagRuns/{run_id}"
        state = _wait(
            lambda: api("GET", run)["state"] in ("success", "failed") and api("GET", run)["state"],
            600,
            "the run",
            home / "components",
        )
        assert state == "success"
        rec = evidence.find(LocalStore(store_root), "adult_income", run_id)["record"]
        assert (rec["decision"], rec["review"]["reviewer"]) == ("rejected", "reviewer")
        assert rec["review"]["rationale"] == "Interval too wide for women."
        # the override is an exception on record: what, why, and the signed-in user who triggered the run
        assert rec["overrides"]["overrides"] == {"disparate_impact_min": 0.57}
        assert rec["overrides"]["rationale"].startswith("A floor inside the interval")
        assert rec["overrides"]["requested_by"] == "reviewer"

        # the env file: the README's commands in another shell see this Airflow and this store
        def sourced(command: str) -> str:
            done = subprocess.run(
                ["bash", "-c", f"source {home / 'env'} && {command}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, (command, done.stderr[-2000:])
            return done.stdout

        listed = sourced("airflow dags list -o json").strip().splitlines()[-1]
        assert "fairgate_lifecycle" in {d["dag_id"] for d in json.loads(listed)}
        shown = json.loads(sourced(f"fairgate evidence {run_id} --json"))
        assert (shown["run_id"], shown["review"]["reviewer"]) == (run_id, "reviewer")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
