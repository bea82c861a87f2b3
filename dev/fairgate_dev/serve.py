"""``make ui``: the Airflow UI with the Fairness view, on the same embedded home and store as ``make demo``.

Runs ``airflow api-server`` in the foreground on SQLite and ``.artifacts/``. Like ``make demo``
it uses the simple auth manager's all-admins mode (every visitor is an admin), which is for a
laptop only; a deployment signs users in (see docker-compose.yaml and docs/operations.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from fairgate_dev.local import REPO, configure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow-home", default=os.environ.get("AIRFLOW_HOME") or str(REPO / ".airflow"))
    parser.add_argument("--artifact-root", default=os.environ.get("FAIRGATE_ARTIFACT_ROOT") or str(REPO / ".artifacts"))
    parser.add_argument("--port", default="8080")
    args = parser.parse_args(argv)
    configure(args.airflow_home, args.artifact_root)
    from fairgate_dev.local import init_db

    init_db()
    airflow = shutil.which("airflow", path=os.path.dirname(sys.executable)) or "airflow"
    print(
        f"Fairness view: http://127.0.0.1:{args.port}/fairgate/  (Airflow UI: http://127.0.0.1:{args.port}/)",
        flush=True,
    )
    os.execv(airflow, [airflow, "api-server", "--host", "127.0.0.1", "--port", args.port])  # noqa: S606


if __name__ == "__main__":
    sys.exit(main())
