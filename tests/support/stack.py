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

from fairgate_dev.local import REPO

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
START_HINT = (
    "PostgreSQL is not reachable on 127.0.0.1:5432. Start it with "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`."
)
REDIS_HINT = (
    "Redis is not reachable on 127.0.0.1:6379. Start it with "
    "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`."
)


def _skip_or_fail(hint: str, exc: Exception) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{hint} ({exc})")
    pytest.skip(hint)


def require_redis() -> None:
    """Skip (or, under CI=true, fail) when Redis is not running."""
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3).ping()
    except redis.exceptions.ConnectionError as exc:
        _skip_or_fail(REDIS_HINT, exc)


READER = "fairgate_reader"


def reader_uri(*tables: str) -> str:
    """The URI of a PostgreSQL role that may only SELECT ``tables`` (created once; what docs/own-data.md
    tells a team to create for a sql:// source): no superuser, no server-file or program roles."""
    import psycopg2

    with psycopg2.connect(dbname="test", **PG) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,))
        if cur.fetchone() is None:
            try:
                cur.execute(f"CREATE ROLE {READER} LOGIN")
            except psycopg2.errors.DuplicateObject:  # created by a parallel test meanwhile
                conn.rollback()
        for table in tables:
            cur.execute(f'GRANT SELECT ON "{table}" TO {READER}')
    return f"postgres://{READER}@{PG['host']}:{PG['port']}/test"


def require_postgres():
    """Skip (or, under CI=true, fail) when PostgreSQL is not running."""
    import psycopg2

    try:
        psycopg2.connect(dbname="postgres", connect_timeout=3, **PG).close()
    except psycopg2.OperationalError as exc:
        _skip_or_fail(START_HINT, exc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AirflowStack:
    def __init__(self, root: Path, env: dict[str, str], *, executor: str = "LocalExecutor"):
        self.root = root
        self.executor = executor
        self.redis_db = uuid.uuid4().int % 15 + 1
        self.db = f"fairgate_test_{uuid.uuid4().hex[:10]}"
        self.port = _free_port()
        self.airflow = str(Path(sys.executable).with_name("airflow"))
        home = root / "home"
        home.mkdir(parents=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.db}",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{self.redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{self.db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            # Tasks record the node they ran on (FAIRGATE_NODE_NAME, set per process below).
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "fairgate_dev.local.node_name",
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
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "GX_ANALYTICS_ENABLED": "False",
            **env,
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.workers = 0

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

    def start(self, components: tuple[str, ...] = ("api-server", "scheduler", "dag-processor")) -> AirflowStack:
        import psycopg2

        conn = psycopg2.connect(dbname="postgres", **PG)
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{self.db}"')
        conn.close()
        if self.executor == "CeleryExecutor":
            import redis

            redis.Redis(host="127.0.0.1", port=6379, db=self.redis_db).flushdb()
        self.cli("db", "migrate")
        self.cli("pools", "set", "fairgate_promotion", "1", "Fairgate: one promotion at a time")
        logs = self.root / "logs"
        logs.mkdir()
        for name, args in {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
        }.items():
            if name in components:
                self._spawn(name, args)
        if self.executor == "CeleryExecutor":
            self.start_worker()
        self.wait(lambda: self._port_open(), 120, "the api-server to listen")
        return self

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.root / "logs" / f"{name}.log", "a") as fh:
            self.procs[name] = subprocess.Popen(
                [self.airflow, *args],
                env={**self.env, "FAIRGATE_NODE_NAME": name},
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_worker(self) -> str:
        """Start one more Celery worker; its tasks record its name as their hostname."""
        self.workers += 1
        name = f"celery-worker-{self.workers}"
        self._spawn(name, ["celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", "2"])
        return name

    def kill(self, name: str) -> None:
        """SIGKILL a process group, as a crashed machine would."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, 9)
        proc.wait(30)

    def api(self, method: str, path: str, **kwargs):
        import httpx

        resp = httpx.request(method, f"http://127.0.0.1:{self.port}/api/v2{path}", timeout=30, **kwargs)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status_code} {resp.text}")
        return resp.json()

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

    def wait_for_runs(
        self, dag_id: str, count: int, timeout: float = 600, run_type: str | None = None
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
        if self.executor == "CeleryExecutor":
            import redis

            redis.Redis(host="127.0.0.1", port=6379, db=self.redis_db).flushdb()
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
