"""A real Airflow deployment started natively for tests: PostgreSQL metadata DB (a fresh
database per run), api-server, scheduler and dag-processor as separate processes, LocalExecutor.

Driven only through the ``airflow`` CLI and the metadata DB, as an operator would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from fairgate_airflow.local import REPO

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
START_HINT = ("PostgreSQL is not reachable on 127.0.0.1:5432. Start it with "
              "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`.")


def require_postgres():
    """Skip (or, under CI=true, fail) when PostgreSQL is not running."""
    import psycopg2

    try:
        psycopg2.connect(dbname="postgres", connect_timeout=3, **PG).close()
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{START_HINT} ({exc})")
        pytest.skip(START_HINT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AirflowStack:
    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.db = f"fairgate_test_{uuid.uuid4().hex[:10]}"
        self.port = _free_port()
        self.airflow = str(Path(sys.executable).with_name("airflow"))
        home = root / "home"
        home.mkdir(parents=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.db}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "GX_ANALYTICS_ENABLED": "False",
            **env,
        }
        self.procs: dict[str, subprocess.Popen] = {}

    def cli(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run([self.airflow, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def sql(self, query: str, *params):
        import psycopg2

        with psycopg2.connect(dbname=self.db, **PG) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else None

    def start(self) -> AirflowStack:
        import psycopg2

        conn = psycopg2.connect(dbname="postgres", **PG)
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{self.db}"')
        conn.close()
        self.cli("db", "migrate")
        self.cli("pools", "set", "fairgate_promotion", "1", "Fairgate: one promotion at a time")
        logs = self.root / "logs"
        logs.mkdir()
        for name, args in {"api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port)],
                           "scheduler": ["scheduler"], "dag-processor": ["dag-processor"]}.items():
            with open(logs / f"{name}.log", "w") as fh:
                self.procs[name] = subprocess.Popen([self.airflow, *args], env=self.env, stdout=fh,
                                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.wait(lambda: self._port_open(), 120, "the api-server to listen")
        return self

    def _port_open(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            if condition():
                return
            time.sleep(2)
        raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}.\n{self.diagnostics()}")

    def wait_for_dags(self, *dag_ids: str, timeout: float = 180) -> None:
        def parsed():
            rows = self.sql("SELECT dag_id FROM serialized_dag")
            return set(dag_ids) <= {r[0] for r in rows or []}

        self.wait(parsed, timeout, f"DAGs {dag_ids} to be parsed")

    def runs(self, dag_id: str, run_type: str | None = None) -> list[tuple[str, str, str]]:
        rows = self.sql("SELECT run_id, state, run_type FROM dag_run WHERE dag_id = %s ORDER BY logical_date", dag_id)
        return [r for r in rows if run_type is None or r[2] == run_type]

    def wait_for_runs(self, dag_id: str, count: int, timeout: float = 600, run_type: str | None = None
                      ) -> list[tuple[str, str, str]]:
        def done():
            runs = self.runs(dag_id, run_type)
            return len(runs) >= count and all(state in ("success", "failed") for _, state, _ in runs)

        self.wait(done, timeout, f"{count} finished runs of {dag_id}")
        return self.runs(dag_id, run_type)

    def wait_for_backfills(self, dag_id: str, timeout: float = 120) -> None:
        """The scheduler marks a backfill complete a loop after its last run; wait for that."""
        def complete():
            rows = self.sql("SELECT count(*) FROM backfill WHERE dag_id = %s AND completed_at IS NULL", dag_id)
            return rows[0][0] == 0

        self.wait(complete, timeout, f"the backfill of {dag_id} to be marked complete")

    def log(self, name: str, tail: int = 60) -> str:
        path = self.root / "logs" / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-tail:]) if path.exists() else ""

    def task_logs(self, tail: int = 40) -> str:
        """The last lines of every task log, for failure reports."""
        out = []
        for path in sorted((Path(self.env["AIRFLOW_HOME"]) / "logs").rglob("*.log")):
            lines = path.read_text(errors="replace").splitlines()
            out.append(f"--- {path.relative_to(self.env['AIRFLOW_HOME'])}\n" + "\n".join(lines[-tail:]))
        return "\n".join(out[-8:])

    def diagnostics(self) -> str:
        return "\n".join([f"== {n}\n{self.log(n, 30)}" for n in self.procs] + [self.task_logs()])

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        import psycopg2

        conn = psycopg2.connect(dbname="postgres", **PG)
        conn.autocommit = True
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        conn.close()
        shutil.rmtree(self.root / "home" / "logs", ignore_errors=True)
