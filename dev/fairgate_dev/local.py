"""Run Fairgate DAGs on an embedded Airflow (SQLite metadata DB inside the project).

Used by ``make demo`` and by the end-to-end tests. :func:`configure` must run before anything
imports Airflow, because Airflow reads its configuration from the environment on import.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PROMOTION_POOL = "fairgate_promotion"


def node_name() -> str:
    """This process's node name for Airflow's ``hostname_callable``: ``FAIRGATE_NODE_NAME`` or the FQDN."""
    import socket

    return os.environ.get("FAIRGATE_NODE_NAME") or socket.getfqdn()


def configure(airflow_home: str | Path, artifact_root: str | Path | None = None) -> None:
    """Point Airflow at this project's DAGs with a SQLite DB under ``airflow_home``."""
    home = Path(airflow_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # plugins/.airflowignore is one path; read as a regexp, it does not go through the glob reader,
        # whose pattern class pathspec 1.x deprecates (the Task SDK's plugin loader reads it as a glob
        # whatever the setting: see fairgate_dev.demo).
        "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": "regexp",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "GX_ANALYTICS_ENABLED": "False",
        # The API signs its tokens with this; a per-home random key, long enough for HS512.
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(home),
    }
    os.environ.update(env)
    if artifact_root is not None:
        os.environ["FAIRGATE_ARTIFACT_ROOT"] = str(artifact_root)


def embedded_env(*, with_policies: bool = True) -> dict[str, str]:
    """The settings :func:`configure` made (and any the caller added): where Airflow and the store are,
    and (``with_policies``) which policy files are in force."""
    policies = () if with_policies else ("FAIRGATE_POLICY", "FAIRGATE_POLICIES")
    return {k: v for k, v in os.environ.items() if k.startswith(("AIRFLOW", "FAIRGATE_", "GX_")) and k not in policies}


def write_env(home: Path, env: dict[str, str], *, made_by: str = "`make airflow`") -> Path:
    """``<home>/env``: the settings as ``export`` lines, plus the project's ``.venv/bin`` on PATH, so the
    docs' ``airflow ...`` and ``fairgate ...`` commands of another shell use this home and store."""
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    lines.append(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"')
    # `airflow dags ...` warns that graph rendering needs graphviz, on every command; nothing here draws graphs
    quiet = "ignore:Could not import graphviz:UserWarning"
    lines.append(f'export PYTHONWARNINGS="{quiet}${{PYTHONWARNINGS:+,$PYTHONWARNINGS}}"')
    path = home / "env"
    path.write_text(f"# source this file: the settings of {made_by}'s Airflow\n" + "\n".join(lines) + "\n")
    return path


def _secret(home: Path) -> str:
    path = home / "jwt_secret"
    if not path.exists():
        path.write_text(secrets.token_hex(64))
        path.chmod(0o600)
    return path.read_text().strip()


def init_db() -> None:
    """Create or upgrade the metadata DB and the one-slot pool that serialises promotions."""
    from airflow.models.pool import Pool
    from airflow.utils.db import initdb

    initdb()
    Pool.create_or_update_pool(
        PROMOTION_POOL, slots=1, description="Fairgate: one promotion at a time", include_deferred=False
    )


def load_dag(dag_id: str):
    """The DAG object parsed from this project's ``dags/`` folder."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if dag_id not in bag.dags:
        raise KeyError(f"DAG {dag_id!r} not found; import errors: {bag.import_errors}")
    return bag.dags[dag_id]


@functools.lru_cache(maxsize=1)
def _app():
    from airflow.api_fastapi.app import create_app

    return create_app(apps="core")


def warm_api() -> None:
    """Build the in-process API app now, in this thread: built first from a reviewer's thread while a
    ``dag.test()`` runs tasks in the main one, the two race in lazy imports (a flaky pydantic error)."""
    _app()


def _api():
    """An in-process client for Airflow's REST API: the calls the UI and a reviewer's tools make."""
    from fastapi.testclient import TestClient

    return TestClient(_app())


def answer_review(
    dag_id: str,
    run_id: str,
    choice: str,
    rationale: str,
    *,
    task_id: str = "human_review",
    map_index: int = -1,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Answer a human-review task through Airflow's REST API (the call the UI makes); ``params``: the
    form's other fields (e.g. ``{"report_incident": True}``)."""
    with _api() as client:
        resp = client.patch(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails",
            json={"chosen_options": [choice], "params_input": {"rationale": rationale, **(params or {})}},
        )
    if resp.status_code != 200:
        raise RuntimeError(f"Answering the review failed: HTTP {resp.status_code} {resp.text}")
    return resp.json()


def review_request(dag_id: str, run_id: str, *, task_id: str = "human_review", map_index: int = -1) -> dict[str, Any]:
    """What the reviewer is shown (subject, body, options, form) for a waiting review."""
    with _api() as client:
        resp = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails")
    if resp.status_code != 200:
        raise RuntimeError(f"Reading the review request failed: HTTP {resp.status_code} {resp.text}")
    return resp.json()


def awaiting_review(dag_id: str, task_id: str = "human_review") -> str | None:
    """The run id of a ``task_id`` instance that waits for human input, if any (via the REST API)."""
    waiting = awaiting_reviews(dag_id, task_id)
    return waiting[0][0] if waiting else None


def awaiting_reviews(dag_id: str, task_id: str) -> list[tuple[str, int]]:
    """``(run id, map index)`` of every ``task_id`` instance that waits for human input (mapped ones too)."""
    with _api() as client:
        resp = client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances", params={"task_id": task_id, "state": "awaiting_input"}
        )
    if resp.status_code != 200:
        raise RuntimeError(f"Listing task instances failed: HTTP {resp.status_code} {resp.text}")
    return [(t["dag_run_id"], t["map_index"]) for t in resp.json()["task_instances"]]


class Reviewer(threading.Thread):
    """Answers the review of a ``dag.test()`` run from a background thread, once it is asked."""

    def __init__(
        self,
        dag_id: str,
        choice: str,
        rationale: str,
        *,
        wait_s: float = 0.0,
        timeout_s: float = 600,
        task_id: str = "human_review",
        params: dict[str, Any] | None = None,
    ):
        super().__init__(daemon=True)
        warm_api()
        self.dag_id, self.choice, self.rationale, self.task_id = dag_id, choice, rationale, task_id
        self.params = params
        self.wait_s, self.timeout_s = wait_s, timeout_s
        self.answered: dict[str, Any] | None = None
        self.request: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not self._halt.is_set() and time.monotonic() < deadline:
            try:
                run_id = awaiting_review(self.dag_id, self.task_id)
                if run_id:
                    self.request = review_request(self.dag_id, run_id, task_id=self.task_id)
                    time.sleep(self.wait_s)
                    self.answered = answer_review(
                        self.dag_id, run_id, self.choice, self.rationale, task_id=self.task_id, params=self.params
                    )
                    return
            except Exception as exc:  # e.g. SQLite busy while the run writes; kept for the caller
                self.error = exc
            time.sleep(0.5)

    def stop(self) -> None:
        self._halt.set()


class Progress(threading.Thread):
    """Prints each task of a ``dag.test()`` run as it finishes (state and seconds), from a background thread."""

    DONE = ("success", "skipped", "failed", "upstream_failed")

    def __init__(self, dag_id: str, *, every_s: float = 1.0):
        super().__init__(daemon=True)
        warm_api()
        self.dag_id, self.every_s = dag_id, every_s
        self.shown: set[tuple[str, int]] = set()
        self._halt = threading.Event()

    def poll(self) -> None:
        with _api() as client:
            resp = client.get(f"/api/v2/dags/{self.dag_id}/dagRuns/~/taskInstances", params={"limit": 100})
        if resp.status_code != 200:
            return
        finished = [t for t in resp.json()["task_instances"] if t["state"] in self.DONE]
        for t in sorted(finished, key=lambda t: t.get("end_date") or ""):
            key = (t["task_id"], t["map_index"])
            if key in self.shown:
                continue
            self.shown.add(key)
            name = t["task_id"] + (f"[{t.get('rendered_map_index') or t['map_index']}]" if t["map_index"] >= 0 else "")
            took = f" ({t['duration']:.1f} s)" if t.get("duration") else ""
            print(f"  {name}: {t['state']}{took}", flush=True)

    def run(self) -> None:
        while not self._halt.is_set():
            with contextlib.suppress(Exception):  # e.g. SQLite busy while the run writes: the next poll shows it
                self.poll()
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
        with contextlib.suppress(Exception):
            self.poll()  # the last tasks
