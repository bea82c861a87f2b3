"""The package as a user installs it: a wheel, not the editable checkout.

The wheel is built from the checkout and installed without ``-e`` into a scratch virtual
environment that sees the project's third-party packages but not its source tree; a lifecycle
then runs there from the domain package alone (as from a notebook: no Airflow), on the bundled
policy and data, and writes its pages. Anything read with a path relative to the source tree
instead of through ``importlib.resources`` fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from tests.support.dags import DAG_BASES

from fairgate_dev.local import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LIFECYCLE = r"""
import json, sys
from fairgate.stages import lifecycle
from fairgate.stages.lifecycle import RunInfo
from fairgate.policy.loader import load_policy, policy_path
from fairgate.storage.local import LocalStore

store, policy = LocalStore(sys.argv[1]), load_policy()
run = RunInfo(dag_id="notebook", run_id="wheel-1")
snapshot = lifecycle.collect(store, policy, run)
quality = lifecycle.validate(store, policy, run, snapshot)
bias = lifecycle.check_bias(store, policy, run, quality)
if bias.detected:  # the mitigation search, one candidate after another
    plan = lifecycle.search_plan(store, policy, run, bias)
    fitted = [lifecycle.fit_candidate(store, policy, run, bias, p["candidate"]) for p in plan]
    trained = lifecycle.select_candidate(store, policy, run, bias, fitted)
else:
    trained = lifecycle.train(store, policy, run, bias)
gate = lifecycle.evaluate(store, policy, run, trained)
passed = gate.outcome == "pass"
decided = lifecycle.deploy(store, policy, run, gate) if passed else lifecycle.reject(store, policy, gate)
recorded = lifecycle.record(store, policy, run, deployment=decided)
import fairgate
print(json.dumps({"module": fairgate.__file__, "policy": str(policy_path()), "rows": snapshot.rows,
                  "decision": recorded.decision, "gate": gate.outcome, "report": recorded.report.key}))
"""


def _install(tmp_path, *, airflow: str | None = None) -> tuple[Path, Path]:
    """A scratch venv holding the built wheel (and seeing the project's third-party packages); with
    ``airflow``, that Airflow release (core and task SDK) installed in the venv ahead of the project's."""
    import shutil

    source, wheels = tmp_path / "source", tmp_path / "wheels"  # built from a copy: no build/ in the checkout
    for name in ("include", "plugins"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
        timeout=600,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("fairgate-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    target = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", purelib], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    # Third-party packages from the project's environment, appended after the venv's own (so the
    # wheel's fairgate wins); the checkout's editable finder is a .pth there and is not run.
    (target / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    packages = [str(wheel)]
    if airflow is not None:
        packages += [f"apache-airflow-core=={airflow}", f"apache-airflow-task-sdk=={AIRFLOW_TASK_SDK[airflow]}"]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *packages],
        check=True,
        timeout=600,
    )
    for command, module in (("fairgate", "fairgate.cli.main"), ("airflow", "airflow.__main__")):
        script = venv / "bin" / command  # the console scripts a `pip install` writes (--target writes none)
        script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        script.chmod(0o755)
    return venv, target


# The Airflow releases the [airflow] extra admits that CI runs besides the project's own (3.3.2): the
# lowest, with the task SDK it shipped with.
AIRFLOW_TASK_SDK = {"3.3.0": "1.3.0"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A scratch venv holding the built wheel (and seeing the project's third-party packages)."""
    return _install(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module", params=["3.3.2", "3.3.0"])
def installed_airflow(request, tmp_path_factory):
    """The wheel beside the highest (the project's) and the lowest Airflow the extra admits."""
    found = request.param
    if found == "3.3.2":
        venv, target = request.getfixturevalue("installed")
    else:
        venv, target = _install(tmp_path_factory.mktemp(f"airflow-{found}"), airflow=found)
    said = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import airflow; print(airflow.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert said == found
    return venv, target


def test_a_wheel_install_runs_a_lifecycle_on_its_bundled_policy_and_data(installed, tmp_path):
    venv, target = installed
    env = {k: v for k, v in os.environ.items() if k not in ("FAIRGATE_POLICY", "PYTHONPATH")}
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", LIFECYCLE, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["module"].startswith(str(target)), result  # the wheel's copy, not the checkout
    assert result["policy"].startswith(str(target)) and result["policy"].endswith("fairgate/config/policy.yaml")
    assert result["rows"] == 30162  # the bundled Adult data, from package data
    assert result["decision"] == "rejected" and result["gate"] == "fail"  # the default policy on Adult
    page = (tmp_path / "store" / result["report"]).read_text()
    assert "<style>" in page and "border-collapse" in page  # the stylesheet and templates came with the wheel


ONE_LINE_DAG_FILE = """from fairgate_airflow.dags import from_policies

from_policies({folder!r})
"""


def test_the_wheel_is_an_airflow_provider_whose_one_line_dag_file_runs_two_models(installed_airflow, tmp_path):
    """Installed into an Airflow environment, the lowest and the highest the extra admits: the provider and
    the Fairness view register through entry points, a DAGs folder holding only the one-line file gets both
    models' DAGs, and a lifecycle runs."""
    import yaml
    from tests.support.policies import default_policy_dict, synthetic_credit_policy

    venv, _ = installed_airflow
    policies, dags, plugins = tmp_path / "policies", tmp_path / "dags", tmp_path / "plugins"
    for folder in (policies, dags, plugins):
        folder.mkdir()
    credit, _ = synthetic_credit_policy(tmp_path, 2000, seed=11)
    (policies / "credit.yaml").write_text(credit.read_text())
    (policies / "adult.yaml").write_text(yaml.safe_dump(default_policy_dict()))
    (dags / "fairgate_dags.py").write_text(ONE_LINE_DAG_FILE.format(folder=str(policies)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRGATE_", "AIRFLOW_")) and k != "PYTHONPATH"}
    env |= {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "FAIRGATE_ARTIFACT_ROOT": str(tmp_path / "store"),
        "FAIRGATE_MLFLOW": "off",
    }

    def airflow(*args: str) -> str:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "airflow", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=900,
        )
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
        return done.stdout

    def as_json(printed: str) -> object:
        return json.loads(printed.strip().splitlines()[-1])  # the CLI's JSON is its last line, after its logs

    airflow("db", "migrate")
    airflow("pools", "set", "fairgate_promotion", "1", "one promotion at a time")
    airflow("dags", "reserialize")  # what the dag-processor does: parse the DAGs folder into the DB
    listed = {d["dag_id"]: d for d in as_json(airflow("dags", "list", "-o", "json"))}
    bases = DAG_BASES
    assert sorted(listed) == sorted(f"{b}__{m}" for b in bases for m in ("adult_income", "credit"))
    assert {d["fileloc"] for d in listed.values()} == {str(dags / "fairgate_dags.py")}
    assert [p["name"] for p in as_json(airflow("plugins", "-o", "json"))].count("fairgate") == 1
    provider = as_json(airflow("providers", "get", "fairgate", "-o", "json"))
    assert provider == [{"Provider": "fairgate", "Version": "0.1.0"}]

    airflow("dags", "test", "fairgate_lifecycle__credit")
    from fairgate.governance import evidence
    from fairgate.storage.local import LocalStore

    store = LocalStore(tmp_path / "store")
    record = evidence.find(store, "credit", kind="lifecycle")["record"]
    assert record["dag_id"] == "fairgate_lifecycle__credit" and record["decision"] in ("deployed", "rejected")
    assert record["policy"]["path"] == str(policies / "credit.yaml")  # the task read its model's policy
    assert evidence.verify(store, "credit").ok and evidence.models(store) == ["credit"]


def test_the_install_page_runs_as_printed_to_two_models_deployed_served_and_audited(installed_airflow, tmp_path):
    """docs/install-into-airflow.md's block, as printed, in a fresh directory with the wheel beside Airflow
    on PATH (no checkout, no variable but the page's own), on the lowest and the highest Airflow the extra
    admits: two models of the team's data deployed, one served from the store (strict JSON), its served
    decisions ingested and audited."""
    import re
    import socket

    from tests.support.policies import synthetic_credit_policy

    from fairgate.governance import evidence
    from fairgate.storage.local import LocalStore

    venv, _ = installed_airflow
    (block,) = re.findall(r"```bash\n(.*?)```", (REPO / "docs" / "install-into-airflow.md").read_text(), flags=re.S)
    for name, seed in (("credit", 21), ("loans", 22)):  # the team's own data
        _, data = synthetic_credit_policy(tmp_path, 20000, seed=seed)
        data.to_csv(tmp_path / f"{name}.csv", index=False)
    (tmp_path / "credit.yaml").unlink()  # the helper's own policy: the page writes the team's
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FAIRGATE_", "AIRFLOW", "MLFLOW_")) and k != "PYTHONPATH"
    }
    env |= {"PATH": f"{venv / 'bin'}:{env['PATH']}", "PORT": str(port), "HOME": str(tmp_path)}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-4000:])
    answer = json.loads(
        (tmp_path / "answer.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON")
    )["predictions"][0]
    assert answer["logged"] is True and answer["application_id"] == "web-1"
    store = LocalStore(tmp_path / "store")
    assert evidence.models(store) == ["credit", "loans"]
    for name in ("credit", "loans"):
        assert evidence.find(store, name, kind="lifecycle")["record"]["decision"] == "deployed", name
        assert evidence.verify(store, name).ok
    (audited,) = (tmp_path / "store" / "audits" / "model=credit").glob("date=*/audit.json")
    audit = json.loads(audited.read_text())
    assert audit["channels"] == {"online": 1} and audit["status"] == "insufficient_evidence"  # one decision
    assert "approved: deployed (gate pass)" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("mlflow", "mlruns"))) == []
