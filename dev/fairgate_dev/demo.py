"""``make demo``: run ``fairgate_lifecycle`` end to end (bundled Adult data, or ``FAIRGATE_POLICY``'s) and explain it.

Uses an embedded Airflow (SQLite under ``.airflow/``) and the local artifact store
(``.artifacts/``), runs the DAG through ``dag.test()``, then prints what was decided and why
from the evidence record. If the gate asks for human review, nobody is at the keyboard: the
demo answers the review itself through Airflow's REST API with Reject (what a timeout means)
and says so.

Exit status: 0 when the run reached a decision (deployed or rejected), 2 when the data failed its
quality checks, 1 when the policy or data cannot be used (the cause is printed first) or the run
failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from fairgate_dev.local import REPO, configure, embedded_env, write_env

BASE_DAG_ID = "fairgate_lifecycle"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow-home", default=os.environ.get("AIRFLOW_HOME") or str(REPO / ".airflow"))
    parser.add_argument("--artifact-root", default=os.environ.get("FAIRGATE_ARTIFACT_ROOT") or str(REPO / ".artifacts"))
    args = parser.parse_args(argv)
    configure(args.airflow_home, args.artifact_root)
    if not (Path(args.airflow_home) / "env").exists():  # `make airflow` writes its own (with sign-in); keep it
        # the policy this demo ran is its command's own (FAIRGATE_POLICY=... make demo), not the home's
        write_env(Path(args.airflow_home), embedded_env(with_policies=False), made_by="`make demo`")
    logging.basicConfig(level=logging.WARNING)
    # Deprecation notices from Airflow's own dependencies; nothing a demo user can act on. Set after
    # Airflow's configuration is imported: it puts "default" filters for its own modules in front.
    import airflow.configuration  # noqa: F401

    warnings.filterwarnings("ignore", message=".*GitWildMatchPattern.*")
    warnings.filterwarnings("ignore", message=".*`httpx` with `starlette.testclient`.*")

    from fairgate.policy.catalog import ModelEntry
    from fairgate_dev.local import Progress, Reviewer, init_db, load_dag

    started = time.monotonic()
    policy = preflight()
    if policy is None:
        return 1
    # the policy's own DAG: plain fairgate_lifecycle for the bundled model, fairgate_lifecycle__<model> else
    dag_id = ModelEntry(name=policy.model_name, path=Path(policy.path), single=True).dag_id(BASE_DAG_ID)
    print(f"Airflow home: {args.airflow_home}\nArtifact store: {args.artifact_root}")
    print("Initialising the metadata DB ...", flush=True)
    init_db()
    dag = load_dag(dag_id)
    reviewer = Reviewer(dag_id, "Reject", "make demo: no human reviewer present; answered as a timeout (reject).")
    reviewer.start()
    print(f"Running {dag_id} with dag.test() ...", flush=True)
    progress = Progress(dag_id)
    progress.start()
    dag_run = dag.test()
    reviewer.stop()
    progress.stop()
    elapsed = time.monotonic() - started
    print(f"\nRun {dag_run.run_id} finished in {elapsed:.0f} s with state {dag_run.state}.")
    if reviewer.answered:
        print("The gate asked for human review; the demo answered it with Reject (as a timeout would).")
    code = explain(dag_run.run_id, policy)
    if dag_run.state != "success":
        failed = [ti.task_id for ti in dag_run.get_task_instances() if ti.state == "failed"]
        print(
            f"\nThe run failed in {failed or 'an unknown task'}. Logs: {args.airflow_home}/logs "
            f"(dag_id={dag_id}/run_id={dag_run.run_id}/)."
        )
        return code or 1
    return code


def preflight():
    """The policy in force, checked against its data before the run; None (with the cause printed) if a run
    would fail."""
    from fairgate.cli.authoring import check_against_data
    from fairgate.data.sources import read_source
    from fairgate.errors import InputError
    from fairgate.policy.loader import load_policy, policy_path

    try:
        policy = load_policy()
        result = check_against_data(policy, read_source(policy))
    except InputError as exc:
        print(f"make demo: {exc}\n(policy file: {policy_path()})")
        return None
    for problem in result.problems:
        print(f"make demo: {problem}")
    if result.problems:
        print(f"(policy file: {policy.path}; check it with: .venv/bin/fairgate policy check {policy.path} --data)")
        return None
    for warning in result.cannot_pass:
        print(f"Note: {warning}")
    return policy


def explain(run_id: str, policy) -> int:
    """Print what the run decided and why; 0 for a decision (deployed, rejected), 2 for quality_failed."""
    from fairgate.governance import evidence
    from fairgate.policy.catalog import bundled_model_name
    from fairgate_airflow.settings import artifact_store

    store = artifact_store()
    # the CLI of this model, as typed in a new shell (the store keeps the policy of a model not bundled)
    cli = ".venv/bin/fairgate" + ("" if policy.model_name == bundled_model_name() else f" --model {policy.model_name}")
    entry = evidence.find(store, policy.model_name, run_id)
    if entry is None:
        print(f"No evidence record for run {run_id}.")
        return 1
    rec = entry["record"]
    if rec["decision"] == "quality_failed":
        quality = rec.get("quality") or {}
        print("\nDecision: QUALITY_FAILED. The data did not pass its quality checks:")
        for failure in quality.get("failures") or []:
            print(f"  - {failure}")
        print(f"Quality page: {quality.get('html_uri')}")
        return 2
    print(f"\nDecision: {rec['decision'].upper()}  (evidence record #{entry['seq']}, hash {entry['hash'][:16]})")
    data = rec.get("data") or {}
    print(f"Data: {data.get('rows')} rows from {data.get('source')} (sha256 {str(data.get('sha256'))[:16]})")
    quality = rec.get("quality") or {}
    print(f"Quality: {quality.get('checks')} checks, {quality.get('failed')} failed")
    bias = rec.get("bias") or {}
    after = (rec.get("mitigation") or {}).get("after") or {}
    if bias:
        where = bias.get("measured_on") or "training rows"
        print(f"\nDisparate impact in the {where}" + (" (before → after reweighing):" if after else ":"))
        for key, m in bias["comparisons"].items():
            di_after = after.get(key, {}).get("disparate_impact")
            print(f"  {key:45s} {m['disparate_impact']:.3f}" + (f" → {di_after:.3f}" if di_after is not None else ""))
    for short in bias.get("short_of_evidence") or []:
        print(f"  Note: {short}")
    proxies = bias.get("proxies") or {}
    if proxies:
        print(
            f"\nProxy check (cross-validated ROC AUC of predicting the attribute; warning at {proxies['threshold']:g}):"
        )
    for attr, res in (proxies.get("attributes") or {}).items():
        if "per_column" in res:
            top = sorted(res["per_column"].items(), key=lambda kv: -kv[1])[:2]
            print(
                f"  {attr:8s} all inputs {res['all_columns']:.3f}; strongest alone: "
                + ", ".join(f"{c} {a:.3f}" for c, a in top)
                + (f"  FLAGGED: {res['flagged']}" if res["flagged"] else "")
            )
    search = rec.get("search") or {}
    if search:
        print(
            f"\nMitigation search ({len(search['candidates'])} candidates, each fitted on the training rows in its "
            "own task, measured on the validation split):"
        )
        for c in search["candidates"]:
            if c["status"] != "fitted":
                print(f"  {c['id']:36s} FAILED: {c['error']}")
                continue
            val = c["validation"]
            worst = min(
                (
                    m["disparate_impact"]["value"]
                    for m in val["fairness"].values()
                    if m["disparate_impact"]["value"] is not None
                ),
                default=None,
            )
            gap = "n/a" if c["band_gap"] is None else f"{c['band_gap']:.3f}"
            print(
                f"  {c['id']:36s} balanced accuracy {val['performance']['balanced_accuracy']:.3f}, lowest DI "
                f"{'n/a' if worst is None else f'{worst:.3f}'}, outside the bands by {gap}"
                + ("  <- chosen" if c.get("chosen") else "")
            )
        print(f"  {search['note']}. Only the chosen candidate meets the gate on the test split.")
    compared = rec.get("comparison") or {}
    if "unmitigated" in compared:
        print("\nEffect of the chosen mitigation on the test split (the same pipeline with and without it):")
        for name in ("unmitigated", "candidate"):
            pos = compared[name]
            dis = ", ".join(f"{k} {v['disparate_impact']:.3f}" for k, v in pos["fairness"].items() if ":" not in k)
            print(f"  {name:12s} balanced accuracy {pos['balanced_accuracy']:.3f}; DI {dis}")
    perf = rec.get("performance") or {}
    if perf:
        print(
            f"\nModel on held-out test data: accuracy {perf['accuracy']:.3f}, balanced accuracy "
            f"{perf['balanced_accuracy']:.3f}, ROC AUC {perf['roc_auc']:.3f}"
        )
        print("Fairness of the model's decisions (value [95% interval]):")
        for key, m in (rec.get("fairness") or {}).items():
            di, eod = m["disparate_impact"], m["equal_opportunity_difference"]
            print(f"  {key:45s} DI {_v(di)}  EOD {_v(eod)}")
    gate = rec.get("gate") or {}
    if gate:
        print(f"\nGate outcome: {gate['outcome']}")
        for reason in gate["reasons"][:8]:
            print(f"  - {reason}")
        if len(gate["reasons"]) > 8:
            print(f"  ... and {len(gate['reasons']) - 8} more (see the report)")
    if rec.get("review"):
        r = rec["review"]
        print(f"Review: {r['choice']} by {r['reviewer']}: {r['rationale']}")
    print(f"\nReport:   {(rec.get('report') or {}).get('uri')}  (open it in a browser; charts are inline)")
    print(f"Card:     {(rec.get('model_card') or {}).get('uri')}")
    sheet = rec.get("datasheet") or {}
    missing = f" ({len(sheet['missing'])} questions for the team unanswered)" if sheet.get("missing") else ""
    print(f"Datasheet: {sheet.get('uri')}{missing}")
    print(f"Evidence: {store.root_uri}/evidence/{policy.model_name}  (check it with: {cli} verify-log)")
    missed = next(
        (
            e["record"]
            for e in evidence.recent(store, policy.model_name, "tracking", last=5)
            if e["record"].get("lifecycle_run_id") == run_id
        ),
        None,
    )
    if missed:
        print(f"MLflow:   not logged ({missed['error']}); later: {cli} mlflow-sync")
    else:
        from fairgate.integrations import tracking

        print(
            f"MLflow:   experiment fairgate/{policy.model_name} in {tracking.tracking_uri()}  (browse it with: "
            "make mlflow-ui, then http://127.0.0.1:5000)"
        )
    if (rec.get("deployment") or {}).get("version"):
        print(f"Bundle for auditors: {cli} bundle production, then .venv/bin/fairgate verify-bundle FILE")
    return 0


def _v(m: dict) -> str:
    if m.get("value") is None:
        return "n/a"
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


if __name__ == "__main__":
    sys.exit(main())
