"""``make airflow``: a real local Airflow on the demo's home and store, with a user who signs in.

Starts ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` (LocalExecutor,
SQLite under ``.airflow/``, the artifact store ``.artifacts/``), so Trigger runs a DAG, a review
waits in the UI for a person, and the Fairness view shows the result. The simple auth manager
signs in one user (``reviewer`` by default) whose password is generated once and kept in
``<home>/simple_auth_manager_passwords.json``; it is printed at start, and the reviewer's name is
what the evidence records as approver. ``<home>/env`` holds the settings as ``export`` lines, so
the docs' ``airflow ...`` and ``fairgate ...`` commands see this Airflow after
``source .airflow/env``. Ctrl-C stops all four.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from fairgate_dev.local import REPO, configure, embedded_env, write_env

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def settings(home: Path, artifact_root: str, *, port: int, user: str) -> dict[str, str]:
    """The environment of this Airflow: the embedded defaults, with sign-in instead of all-admins."""
    configure(home, artifact_root)
    passwords = home / "simple_auth_manager_passwords.json"
    known = json.loads(passwords.read_text()) if passwords.exists() else {}
    if user not in known:
        known[user] = secrets.token_urlsafe(12)
        passwords.write_text(json.dumps(known))
        passwords.chmod(0o600)
    os.environ.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__PORT": str(port),
        }
    )
    return embedded_env()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow-home", default=os.environ.get("AIRFLOW_HOME") or str(REPO / ".airflow"))
    parser.add_argument("--artifact-root", default=os.environ.get("FAIRGATE_ARTIFACT_ROOT") or str(REPO / ".artifacts"))
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--user", default="reviewer", help="the user who signs in (default: reviewer)")
    args = parser.parse_args(argv)
    home = Path(args.airflow_home).resolve()
    env = settings(home, args.artifact_root, port=args.port, user=args.user)
    env_file = write_env(home, env)
    from fairgate_dev.local import init_db

    init_db()
    airflow = str(Path(sys.executable).with_name("airflow"))
    logs = home / "components"
    logs.mkdir(exist_ok=True)
    procs = {}
    for name in COMPONENTS:
        extra = ["--host", "127.0.0.1", "--port", str(args.port)] if name == "api-server" else []
        procs[name] = subprocess.Popen(  # noqa: S603  (our own airflow, fixed arguments)
            [airflow, name, *extra],
            stdout=(logs / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    password = json.loads((home / "simple_auth_manager_passwords.json").read_text())[args.user]
    print(
        f"Airflow: http://127.0.0.1:{args.port}/  sign in as {args.user} / {password}\n"
        f"Fairness view: http://127.0.0.1:{args.port}/fairgate/\n"
        f"Components: {', '.join(COMPONENTS)} (logs in {logs}/)\n"
        f"In another shell: source {env_file}  (then airflow ... and fairgate ... use this Airflow)\n"
        "Ctrl-C stops them.",
        flush=True,
    )

    def stop(*_: object) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    try:
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"airflow {name} exited with {proc.returncode}; see {logs / f'{name}.log'}", file=sys.stderr)
                    stop()
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
