"""The ``fairgate`` command: what is deployed, what was decided, and whether the log is intact.

Every command takes ``--json`` for scripts (errors then print as JSON too). The store is
``FAIRGATE_ARTIFACT_ROOT`` (or ``--artifact-root``). ``--model`` picks the model among the policies
of ``FAIRGATE_POLICIES`` (default: the only one); ``--policy`` names a policy file directly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from fairgate import configuration
from fairgate.cli import authoring as policy_tools
from fairgate.data.quality import duplicate_rows, validate_frame
from fairgate.data.sources import read_location, read_source
from fairgate.errors import (
    CatalogError,
    EvidenceIntegrityError,
    FairgateError,
    InputError,
    IntegrityError,
    RecourseError,
)
from fairgate.governance import approval, bundle, evidence, incidents, registry
from fairgate.governance.records import LifecycleRecord
from fairgate.integrations import model_server, tracking
from fairgate.models import recourse, shapley
from fairgate.monitoring import cases
from fairgate.monitoring.prediction_log import find_prediction, recourse_context, shapley_context
from fairgate.policy import catalog
from fairgate.policy import editing as policy_editing
from fairgate.policy import schema as policy_schema
from fairgate.policy.loader import load_policy, parse_policy
from fairgate.policy.schema import Policy
from fairgate.stages.lifecycle import rollback
from fairgate.storage import anchor
from fairgate.storage.base import ArtifactStore, read_recorded, sha256_bytes
from fairgate.storage.roots import default_s3_client, open_store


def _out(args: argparse.Namespace, payload: Any, text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)


def cmd_status(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    """What is in production and what the last runs decided; exit 2 when the evidence does not back production."""
    pointer, _ = registry.read_pointer(store, model)
    try:
        approved, finding = approval.production(store, model), None
    except IntegrityError as exc:
        approved, finding = None, str(exc)
    # Figures only from an approved version's manifest: a refused one may be the edited file itself.
    manifest = registry.read_manifest(store, model, approved.version) if approved else {}
    last = evidence.find(store, model, kind="lifecycle")
    audit = evidence.find(store, model, kind="audit")
    payload = {
        "model": model,
        "production": pointer
        and {
            "version": pointer["version"],
            "since": pointer["since"],
            "action": pointer["action"],
            "run_id": pointer["run_id"],
            "performance": manifest.get("performance"),
            "approved_by": approved and {"seq": approved.seq, "how": approved.how},
            "integrity": finding,
        },
        "last_lifecycle": last and {k: last["record"].get(k) for k in ("run_id", "decision", "recorded_at")},
        "last_audit": audit and {k: audit["record"].get(k) for k in ("run_id", "status", "recorded_at")},
    }
    lines = [f"Model: {model}"]
    if pointer:
        perf = manifest.get("performance") or {}
        lines.append(
            f"Production: {pointer['version'][:12]} since {pointer['since']} ({pointer['action']}, "
            f"run {pointer['run_id']}); balanced accuracy {_shown(perf.get('balanced_accuracy'))}"
        )
        lines.append(
            f"  NOT USED: {finding}"
            if finding
            else f"  approved: {approved.how} (evidence #{approved.seq})"
            if approved
            else ""
        )
    else:
        lines.append("Production: nothing deployed yet")
    lines.append(
        "Last lifecycle: "
        + (
            f"{last['record']['decision']} in run {last['record']['run_id']} at {last['record']['recorded_at']}"
            if last
            else "none"
        )
    )
    lines.append(
        "Last audit: " + (f"{audit['record'].get('status')} at {audit['record']['recorded_at']}" if audit else "none")
    )
    _out(args, payload, "\n".join(line for line in lines if line))
    return 2 if finding else 0


def _shown(value: object) -> str:
    """A figure as people read it: four decimals (the JSON output keeps every digit)."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _status_of_every_model(args: argparse.Namespace, store: ArtifactStore, names: list[str]) -> int:
    """``fairgate status`` with several models and none chosen: each model's status in turn."""
    import contextlib
    import io

    payloads, texts = [], []
    for name in names:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            cmd_status(args, store, name)
        texts.append(buffer.getvalue().rstrip())
        if args.json:
            payloads.append(json.loads(buffer.getvalue()))
    _out(args, {"models": payloads}, "\n\n".join(texts))
    return 0


def cmd_models(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    current = registry.production_version(store, model)
    manifests = registry.list_versions(store, model)
    versions = [
        {
            "version": m["version"],
            "production": m["version"] == current,
            "approved": m.get("approved"),
            "gate_outcome": m.get("gate_outcome"),
            "approver": m.get("approver"),
            "registered_at": m.get("registered_at"),
            "run_id": m.get("run_id"),
        }
        for m in manifests
    ]
    text = (
        "\n".join(
            f"{'*' if m['version'] == current else ' '} {m['version'][:12]}  {m.get('registered_at')}  "
            f"gate={m.get('gate_outcome')}  approver={m.get('approver')}"
            for m in manifests
        )
        or "No versions."
    )
    _out(args, {"model": model, "versions": versions}, text)
    return 0


def cmd_evidence(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    entry = evidence.find(store, model, args.run_id, kind=None if args.run_id != "latest" else "lifecycle")
    if entry is None:
        print(f"No evidence record for run {args.run_id!r}.", file=sys.stderr)
        return 1
    rec = entry["record"]
    payload = {**rec, "seq": entry["seq"], "hash": entry["hash"]}
    text = f"Run {rec['run_id']}: {rec['decision']} (record #{entry['seq']}, hash {entry['hash'][:16]})\n" + json.dumps(
        {k: rec.get(k) for k in ("data", "quality", "gate", "deployment")}, indent=2, default=str
    )
    _out(args, payload, text)
    return 0


def cmd_verify_log(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    if args.sign_head:
        signed = evidence.sign_head(store, model)
        print(f"Signed HEAD of {model}: #{signed['seq']} {signed['hash']}.", file=sys.stderr)
    result = evidence.verify(store, model)
    try:
        head: evidence.Head | None = evidence.head(store, model)
    except EvidenceIntegrityError:  # a lost HEAD that is not rebuilt (evidence key set): said in the problems
        head = None
    outside = anchor.current()
    text = (
        f"Evidence log intact: {result.records} records; head #{head['seq']} {head['hash']}."
        if result.ok and head
        else "Evidence log BROKEN:\n" + "\n".join(f"  - {p}" for p in result.problems)
    )
    text += (
        f"\nHead anchored outside the store: {outside.where}."
        if outside
        else "\nNo outside anchor (FAIRGATE_HEAD_ANCHOR): a chain cut back to an earlier HEAD would not be detected."
    )
    payload = {"ok": result.ok, "records": result.records, "problems": result.problems, "head": head}
    _out(args, {**payload, "anchor": outside.where if outside else None}, text)
    return 0 if result.ok else 2


def cmd_bundle(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    from pathlib import Path

    version = bundle.resolve_version(store, model, args.version)
    data = bundle.build(store, model, version, include_model=not args.no_model)
    out = Path(args.out or f"{model}-{version[:12]}.fairgate.zip")
    tmp = out.with_name(f".{out.name}.tmp")  # written whole, then renamed: never a half-written bundle
    tmp.write_bytes(data)
    tmp.replace(out)
    _out(
        args,
        {"written": str(out), "model": model, "version": version, "bytes": len(data)},
        f"Wrote {out} ({len(data):,} bytes): release {version[:12]} of {model}; check it with "
        f"`fairgate verify-bundle {out}`.",
    )
    return 0


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    """Offline: needs the file and nothing else (no store, no policy)."""
    from pathlib import Path

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise InputError(f"Cannot read bundle {args.file}: {exc.strerror}.") from None
    result = bundle.verify(data, expected_head=args.expect_head)
    head = result.index.get("head") or {}
    text = (
        f"Bundle verifies: {result.index.get('model')} version {str(result.index.get('version'))[:12]}, "
        f"{len(result.index.get('members', []))} members, evidence chain to head #{head.get('seq')} "
        f"{head.get('hash')}."
        if result.ok
        else f"Bundle does NOT verify: {result.problems[0]}" + "".join(f"\n  - {p}" for p in result.problems[1:])
    )
    _out(args, result.as_dict(), text)
    return 0 if result.ok else 2


def cmd_contest(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    from datetime import date

    try:
        day = date.fromisoformat(args.date) if args.date else None
    except ValueError:
        raise InputError(f"--date must be YYYY-MM-DD. Got {args.date!r}.") from None
    case = cases.open_contest(
        store,
        args.loaded_policy,
        args.row,
        reason=args.reason,
        day=day,
        opened_by=_cli_person(args.by),
    )
    dag_id = catalog.dag_id_of(model, "fairgate_contest")
    conf = json.dumps({"case_id": case["case_id"]})
    _out(
        args,
        {**case, "trigger": {"dag_id": dag_id, "conf": {"case_id": case["case_id"]}}},
        f"Opened case {case['case_id']} (evidence record #{case['seq']}). A reviewer decides it in Airflow:\n"
        f"  airflow dags trigger {dag_id} --conf '{conf}'\n(the Fairness view's contest route triggers it itself).",
    )
    return 0


def _cli_person(named: str | None) -> str:
    """Who acts from this shell, as a record keeps it: the name given (``--by``), which nothing here can
    authenticate, beside the OS account and host that ran the command (the Fairness view and the REST
    API record the user Airflow signed in instead)."""
    import getpass
    import socket

    shell = f"cli:{getpass.getuser()}@{socket.gethostname()}"
    return f"{named.strip()} (via {shell})" if named and named.strip() else shell


def cmd_incidents(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    """``fairgate incidents [list|open|act|close]``: the model's incident records and their deadlines."""
    by = _cli_person(args.by)
    if args.verb == "open":
        if not args.what:
            raise InputError("fairgate incidents open needs --what: what was seen.")
        found = incidents.open_incident(
            store,
            args.loaded_policy,
            source="reported",
            link=args.link or datetime.now(UTC).isoformat(timespec="seconds"),
            seen=[args.what],
            opened_by=by,
            clock=args.clock,
            version=registry.production_version(store, model),
        )
        _out(args, dict(found), f"Opened {incidents.describe(found)}")
        return 0
    if args.verb in ("act", "close"):
        if not args.incident_id:
            raise InputError(f"fairgate incidents {args.verb} needs the incident's id (fairgate incidents lists them).")
        if args.verb == "act":
            found = incidents.act(store, model, args.incident_id, action=args.action, note=args.note or "", by=by)
        else:
            found = incidents.close(store, model, args.incident_id, rationale=args.rationale or "", by=by)
        _out(args, dict(found), incidents.describe(found))
        return 0
    every = incidents.incidents(store, model)
    shown = every if args.all else [i for i in every if i["status"] == "open"]
    lines = [incidents.describe(i) for i in shown] or [
        f"No {'' if args.all else 'open '}incidents for {model} ({len(every)} in all)."
    ]
    _out(args, {"model": model, "incidents": shown}, "\n".join(lines))
    return 2 if any(i["overdue"] and i["status"] == "open" for i in shown) else 0


def cmd_plan(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    text = incidents.monitoring_plan(args.loaded_policy)
    _out(args, {"model": model, "plan": text}, text.rstrip())
    return 0


def cmd_case(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    found = [
        c
        for c in cases.cases_of(store, model)
        if str(c["row"]) == args.row and (not args.date or c["date"] == args.date)
    ]
    if not found:
        print(f"No contest of {args.loaded_policy.dataset.row_key} {args.row!r} for model {model!r}.", file=sys.stderr)
        return 1
    lines = []
    for c in found:
        o = c["outcome"]
        done = {"Uphold": "upheld", "Overturn": "overturned"}
        lines.append(
            f"Case {c['case_id']}: decision of {c['date']} contested by {c['opened_by']} ({c['reason']}); "
            + (
                f"{done[o['choice']]} by {o['reviewer']} on {o['decided_at']}: {o['rationale']}"
                if o
                else "open, waiting for a reviewer"
            )
        )
    _out(args, {"cases": found}, "\n".join(lines))
    return 0


def cmd_rollback(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    from datetime import UTC, datetime

    moved = rollback(
        store,
        args.loaded_policy,
        to_version=args.to,
        actor=_cli_person(None),
        reason=args.reason,
        run_id=f"cli__{datetime.now(UTC).isoformat()}",
    )
    _out(
        args,
        moved.to_json(),
        f"Production of {model} moved from {moved.from_version[:12]} back to "
        f"{moved.to_version[:12]} (evidence record #{moved.seq}).",
    )
    return 0


def cmd_explain(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    from datetime import date

    try:
        day = date.fromisoformat(args.date) if args.date else None
    except ValueError:
        print(f"fairgate explain: --date must be YYYY-MM-DD. Got {args.date!r}.", file=sys.stderr)
        return 1
    found = find_prediction(store, args.loaded_policy, args.row, day=day)
    if found is None:
        where = f"on {day}" if day else "in the last 90 days of predictions"
        print(f"No prediction for {args.loaded_policy.dataset.row_key} {args.row!r} {where}.", file=sys.stderr)
        return 1
    verdict = "favourable" if found["decision"] == 1 else "unfavourable"
    lines = [
        f"Record {found['row']} scored on {found['date']} by model {found['model_version'][:12]}: "
        f"{verdict} (score {found['score']:.3f}). Main reasons:"
    ]
    lines += [f"  {i}. {r['text']}" for i, r in enumerate(found["reasons"], 1)] or ["  (none recorded)"]
    values_json: shapley.RecordJSON | None = None
    if args.shapley:
        import pandas as pd

        model, reference = shapley_context(store, args.loaded_policy, found["model_version"])
        values = shapley.explain(model, pd.DataFrame([found["inputs"]]), args.loaded_policy, reference)
        values_json = values.record(0)
        lines += [
            f"Shapley values ({values.method}; {values.output}, base {values.base:+.3f} = the average over "
            f"{len(reference)} training rows):"
        ]
        order = sorted(range(len(values.features)), key=lambda j: -abs(values.values[0, j]))
        lines += [
            f"  {values.features[j]} = {_plain_value(found['inputs'].get(values.features[j]))}: "
            f"{values.values[0, j]:+.3f}"
            for j in order
        ]
        lines.append(f"  base + values = {values.outputs[0]:+.3f} ({values.output})")
    if args.recourse:
        if found["decision"] == 1:
            raise RecourseError(
                f"Record {found['row']} was decided favourably; recourse applies to unfavourable decisions."
            )
        model, scale, proxies = recourse_context(store, args.loaded_policy, found["model_version"])
        result = recourse.compute(model, found["inputs"], args.loaded_policy, scale=scale, proxies=proxies)
        answer = {**found, **_shapley_part(values_json), "recourse": result.as_dict()}
        lines += ["What would change it:", f"  {recourse.sentence(result, args.loaded_policy)}"]
        if result.feasible:
            lines.append(
                f"  (least cost {result.cost:g} in standard deviations of the training data; "
                f"{result.method}; new score {result.score:.3f})"
            )
        lines += [f"  Note: {n}" for n in result.notes]
        _out(args, answer, "\n".join(lines))
        return 0
    _out(args, {**found, **_shapley_part(values_json)}, "\n".join(lines))
    return 0


def _shapley_part(values: shapley.RecordJSON | None) -> dict[str, shapley.RecordJSON]:
    """The ``shapley`` key of an explained record's JSON, when ``--shapley`` asked for it."""
    return {"shapley": values} if values is not None else {}


def _plain_value(x: Any) -> str:
    return f"{x:,.4g}" if isinstance(x, float) else str(x)


def cmd_policy(args: argparse.Namespace) -> int:
    """``fairgate policy schema|check|set|init``: these need no store and no policy in force."""

    if args.policy_command == "schema":
        text = policy_schema.defaults_table() if args.markdown else json.dumps(policy_schema.json_schema(), indent=2)
        print(text)
        return 0
    if args.policy_command == "check":
        policy = load_policy(args.file)
        result = policy_tools.CheckResult()
        if args.data:
            source = read_source(policy)
            result = policy_tools.check_against_data(policy, source)
            if (
                not result.problems
            ):  # then the quality gate's own checks, on the columns a run keeps: what the run will say
                result.problems += _quality_gate_says(policy, source)
        runs = policy_tools.next_runs(policy)
        payload = {"file": args.file, "model": policy.model_name, "schema": "ok", "next_runs": runs, **result.as_dict()}
        lines = [
            f"{args.file}: the schema is satisfied (model {policy.model_name}).",
            "Next runs (UTC): " + ", ".join(f"{dag} {at}" for dag, at in runs.items()),
        ]
        if args.data:
            lines += (
                [f"  error: {p}" for p in result.problems]
                + [f"  warning (cannot pass): {p}" for p in result.cannot_pass]
                + [f"  warning: {w}" for w in result.warnings]
                + [f"  {n}" for n in result.notes]
            )
            warned = len(result.cannot_pass) + len(result.warnings)
            lines.append(
                f"{len(result.problems)} error(s): a run would fail on this data."
                if result.problems
                else "The data fits the policy" + (f", with {warned} warning(s) above." if warned else ".")
            )
        _out(args, payload, "\n".join(lines))
        return result.exit_code  # 2: errors; warnings alone exit 0
    if args.policy_command == "set":
        policy_editing.set_in_file(args.file, args.settings)
        policy = load_policy(args.file)
        keys = [s.partition("=")[0] for s in args.settings]
        _out(
            args,
            {"file": args.file, "model": policy.model_name, "set": keys, "schema": "ok"},
            f"{args.file}: set {', '.join(keys)}; the schema is satisfied (model {policy.model_name}).",
        )
        return 0
    # init: read the source the way a run will, then profile it
    protected = [policy_tools.parse_protected(p) for p in args.protected]
    if "://" not in args.source:  # a local path: written absolute, so runs from any directory find it
        from pathlib import Path

        args.source = str(Path(args.source).resolve())
    if args.format is None:
        args.format = "parquet" if args.source.lower().endswith((".parquet", ".pq")) else "csv"
    df = read_location(args.source, fmt=args.format, query=args.query, limits=policy_schema.SqlSources())
    text = policy_tools.starter_policy(
        df,
        model_name=args.model_name,
        source=args.source,
        label=args.label,
        favorable=args.favorable,
        protected=protected,
        fmt=args.format,
        row_key=args.row_key,
        query=args.query,
    )
    parse_policy(__import__("yaml").safe_load(text))  # what init writes always loads
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text)
        said = [line[2:] for line in text.splitlines() if line.startswith(("# Left out", "# Row key", "# No row key"))]
        _out(
            args,
            {"written": args.out, "notes": said},
            "\n".join(
                [
                    *(f"note: {line}" for line in said),
                    f"Wrote {args.out}; next: fairgate policy check {args.out} --data",
                ]
            ),
        )
    else:
        print(text, end="")
    return 0


def cmd_mlflow_sync(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    synced = tracking.sync(store, args.loaded_policy, mlflow=tracking.client(args.tracking_uri))
    _out(
        args,
        synced.__dict__,
        f"MLflow {tracking.tracking_uri(args.tracking_uri)}: {len(synced.runs)} run(s) logged, {synced.present} "
        f"already there; {len(synced.versions)} version(s) registered; {synced.audits} audit(s) added; "
        f"'{tracking.ALIAS}' alias -> {synced.alias or 'none (nothing in production)'}",
    )
    return 0


def cmd_mlflow_check(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    problems = tracking.disagreements(store, model, mlflow=tracking.client(args.tracking_uri))
    _out(
        args,
        {"agrees": not problems, "problems": problems},
        "\n".join(["MLflow disagrees with Fairgate:", *(f"  - {p}" for p in problems)])
        if problems
        else f"MLflow agrees with Fairgate on {model}: the '{tracking.ALIAS}' alias, the versions and the runs.",
    )
    return 2 if problems else 0


def cmd_serve(args: argparse.Namespace, store: ArtifactStore, model: str) -> int:
    """Serve Fairgate's approved production version (not whatever MLflow's alias names); never returns.

    From MLflow's registered copy when a tracking server is named (``--tracking-uri`` or
    ``MLFLOW_TRACKING_URI``; ``--from mlflow``), else straight from the artifact store (``--from store``:
    no tracking server, registry or file in the working directory needed; the store is the authority).
    """
    import tempfile
    from pathlib import Path

    dest = Path(args.workdir or tempfile.mkdtemp(prefix=f"fairgate-serve-{model}-"))
    named = args.tracking_uri or configuration.value("mlflow_tracking_uri")
    source = args.source or ("mlflow" if named else "store")
    if source == "store":
        prepared = _prepare_from_store(store, model, dest)
        where = "from the artifact store"
    else:
        mlflow = tracking.client(args.tracking_uri)
        prepared = model_server.prepare(store, model, mlflow, dest)
        where = f"(MLflow version {prepared.mlflow_version})"
        alias = tracking.alias_version(mlflow, model)
        if alias != prepared.mlflow_version:
            print(
                f"MLflow's '{tracking.ALIAS}' alias names version {alias}, not the one Fairgate approved; serving "
                f"Fairgate's (fairgate mlflow-sync moves the alias back).",
                file=sys.stderr,
            )
    print(
        f"Serving {model} version {prepared.version[:12]} {where} on http://{args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    command, needs = model_server.serve_command(prepared, host=args.host, port=args.port, workers=args.workers)
    env = {**model_server.environment(store), **needs}
    os.execve(command[0], command, env)  # noqa: S606  # the server replaces this process


def _prepare_from_store(store: ArtifactStore, model: str, dest: Any) -> model_server.Prepared:
    """The approved production version of ``model`` as a model-from-code folder written into ``dest`` from
    the files its promotion record binds in the store, and checked as a downloaded one is: no tracking
    server, registry or file in the working directory is involved."""
    approved = approval.production(store, model)
    if approved is None:
        raise InputError(f"Nothing of {model!r} is in production; there is nothing to serve.")
    dest.mkdir(parents=True, exist_ok=True)
    recorded = approval.read_bound(store, approved, approval.POLICY)
    (dest / "policy.yaml").write_bytes(recorded)
    policy = load_policy(dest / "policy.yaml")
    folder = tracking.save_served_model(store, policy, approved.version, dest / "version", policy_file=recorded)
    model_server.check_folder(folder, model, approved.version)
    return model_server.Prepared(model=model, version=approved.version, mlflow_version="", folder=folder)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fairgate", description=__doc__.splitlines()[0])
    parser.add_argument("--artifact-root", help="artifact store (default: $FAIRGATE_ARTIFACT_ROOT)")
    parser.add_argument("--policy", help="policy file (default: the --model's, $FAIRGATE_POLICY or the bundled one)")
    parser.add_argument("--model", help="the model (default: the only one of $FAIRGATE_POLICIES)")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "status": (cmd_status, "production version, last lifecycle decision, last audit"),
        "models": (cmd_models, "every registered version and which one is in production"),
        "evidence": (cmd_evidence, "the evidence record of one lifecycle run"),
        "verify-log": (cmd_verify_log, "re-verify the evidence hash chain (exit 2 if broken)"),
        "rollback": (cmd_rollback, "point production back to an earlier approved version"),
        "explain": (cmd_explain, "why a scored record got its decision, in plain words"),
        "bundle": (cmd_bundle, "write one release's evidence, artifacts and chain proof to a file for auditors"),
        "contest": (cmd_contest, "open a contest of a scored decision, for a reviewer in Airflow"),
        "case": (cmd_case, "the contests of a record and their outcomes"),
        "incidents": (cmd_incidents, "incident records and their reporting deadlines: list, open, act, close"),
        "plan": (cmd_plan, "the post-market monitoring plan the policy amounts to (Markdown)"),
        "mlflow-sync": (cmd_mlflow_sync, "log to MLflow what the evidence log holds and MLflow lacks; move the alias"),
        "mlflow-check": (
            cmd_mlflow_check,
            "compare MLflow's alias, versions and runs with Fairgate's (exit 2 if they differ)",
        ),
        "serve": (cmd_serve, "serve the production version the evidence approved, over HTTP (MLflow's scoring server)"),
    }
    for name, (fn, help_) in commands.items():
        p = sub.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "evidence":
            p.add_argument("run_id", help="a run id, or 'latest'")
        if name == "explain":
            p.add_argument("row", help="the record's row key (dataset.row_key)")
            p.add_argument("--date", help="the day it was scored (YYYY-MM-DD); default: the newest match")
            p.add_argument(
                "--recourse",
                action="store_true",
                help="also the least-cost change of actionable inputs that would make it favourable",
            )
            p.add_argument(
                "--shapley",
                action="store_true",
                help="also each input's Shapley value (for developers): exact for linear and tree models",
            )
        if name in ("contest", "case"):
            p.add_argument("row", help="the record's row key (dataset.row_key)")
            p.add_argument("--date", help="the day it was scored (YYYY-MM-DD); default: the newest")
        if name == "contest":
            p.add_argument("--reason", required=True, help="what the person says; shown to the reviewer")
            p.add_argument("--by", help="who contests (default: cli:<user>)")
        if name == "incidents":
            p.add_argument("verb", nargs="?", choices=["list", "open", "act", "close"], default="list")
            p.add_argument("incident_id", nargs="?", help="the incident (act, close)")
            p.add_argument("--all", action="store_true", help="list closed incidents too")
            p.add_argument("--what", help="open: what was seen")
            p.add_argument("--link", help="open: what it refers to (a case id, a date); default: now")
            p.add_argument("--clock", choices=["serious", "widespread", "death"], help="open: the reporting clock")
            p.add_argument(
                "--action", choices=["rollback", "retraining", "note"], default="note", help="act: what was done"
            )
            p.add_argument("--note", help="act: what was done, in words")
            p.add_argument("--rationale", help="close: what was found and done (required)")
            p.add_argument("--by", help="who (default: cli:<user>)")
        if name == "bundle":
            p.add_argument("version", help="a version's sha256 (or a unique prefix of 6+ characters), or 'production'")
            p.add_argument("--out", help="the file to write (default: <model>-<version>.fairgate.zip)")
            p.add_argument("--no-model", action="store_true", help="leave the model file out")
        if name == "serve":
            p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
            p.add_argument("--port", type=int, default=5001, help="port (default: 5001)")
            p.add_argument("--workers", type=int, default=1, help="uvicorn workers (default: 1)")
            p.add_argument("--workdir", help="where the checked model folder is kept (default: a new temp folder)")
            p.add_argument(
                "--from",
                dest="source",
                choices=["store", "mlflow"],
                help="serve straight from the artifact store, or MLflow's registered copy (default: mlflow when a "
                "tracking server is named, else store)",
            )
        if name.startswith("mlflow-") or name == "serve":
            p.add_argument(
                "--tracking-uri",
                help="MLflow server (default: $MLFLOW_TRACKING_URI, else the embedded "
                "store beside a local artifact store)",
            )
        if name == "verify-log":
            p.add_argument(
                "--sign-head",
                action="store_true",
                help="first sign HEAD with the evidence key (FAIRGATE_EVIDENCE_KEY), vouching for the chain as it is",
            )
        if name == "rollback":
            p.add_argument("--to", help="version (sha256) to restore; default: the previous production version")
            p.add_argument("--reason", required=True, help="why; recorded in the evidence log")
        p.set_defaults(fn=fn)
    policy = sub.add_parser("policy", help="write, check or describe a policy file")
    psub = policy.add_subparsers(dest="policy_command", required=True)
    schema = psub.add_parser("schema", help="the JSON Schema of policy files (for editors)")
    schema.add_argument("--markdown", action="store_true", help="the reference table of keys (docs/policy.md) instead")
    check = psub.add_parser("check", help="validate a policy file; with --data, against its data too")
    check.add_argument("file")
    check.add_argument("--data", action="store_true", help="read the source and check columns, values, group sizes")
    set_ = psub.add_parser("set", help="set keys of a policy file (comments kept); refused unless the result is valid")
    set_.add_argument("file")
    set_.add_argument(
        "settings", nargs="+", metavar="KEY=VALUE", help="dotted key and YAML value, e.g. audit.incoming=/data/feed"
    )
    init = psub.add_parser("init", help="profile a data source and write a complete, commented policy")
    init.add_argument("--source", required=True, help="file, folder of date= partitions, or sql://<conn id>")
    init.add_argument("--query", help="SQL for a sql:// source")
    init.add_argument(
        "--format", choices=["csv", "parquet"], help="default: parquet for a .parquet file, csv otherwise"
    )
    init.add_argument("--label", required=True)
    init.add_argument("--favorable", required=True, help="the label's favourable value")
    init.add_argument(
        "--protected",
        action="append",
        required=True,
        help="COLUMN=PRIVILEGED[,PRIVILEGED...] or COLUMN>=NUMBER; repeat for each attribute",
    )
    init.add_argument("--model-name", required=True)
    init.add_argument("--row-key", help="unique row identifier (default: a unique *_id column, if any)")
    init.add_argument("--out", help="write here instead of printing")
    for p in (schema, check, set_, init):
        p.add_argument("--json", action="store_true", help="machine-readable output (errors too)")
        p.set_defaults(fn=None)
    verify_bundle = sub.add_parser(
        "verify-bundle", help="check a release bundle offline (exit 2 if it does not verify)"
    )
    verify_bundle.add_argument("file")
    verify_bundle.add_argument("--expect-head", help="the evidence log head hash you know (from verify-log)")
    verify_bundle.add_argument("--json", action="store_true", help="machine-readable output (errors too)")
    return parser


def _quality_gate_says(policy: Policy, source: Any) -> list[str]:
    """The quality gate's failed checks on ``source`` (the run's snapshot columns), each as a problem."""
    key = [policy.dataset.row_key] if policy.dataset.row_key else []
    kept = dict.fromkeys([*key, *policy.features, *policy.protected_columns, policy.dataset.label])
    checked = validate_frame(source[list(kept)], policy, duplicate_rows=duplicate_rows(source, policy))
    return [f"the quality gate would fail: {c.describe()}" for c in checked.failures]


def _configured() -> bool:
    """Whether this shell names its policies (a folder, or one file); else the store says which models there are."""
    return bool(configuration.value("policies") or os.environ.get(catalog.POLICY_ENV))


def _stored_models(store: ArtifactStore) -> list[str]:
    """The models with evidence in ``store``, when this shell names no policies (else [])."""
    return [] if _configured() else evidence.models(store)


def _policy_of(store: ArtifactStore, model: str | None) -> Policy:
    """The policy of ``model``: its catalog entry, else (a model with evidence in the store that this
    deployment's catalog does not list) the policy file its latest lifecycle run kept in the store.

    With no policies named (no folder, no file), the models are those with evidence in the store: the
    only one of them when ``model`` is None, each with the policy its latest run kept.
    """
    stored = _stored_models(store)
    if stored and model is None:
        if len(stored) > 1:
            raise CatalogError(
                f"The store {store.root_uri} holds {len(stored)} models; choose one with --model: {stored}."
            )
        model = stored[0]
    if model in stored:
        try:
            return kept_policy(store, model)
        except CatalogError:  # no run kept one: the bundled policy, when it is that model's
            if model != catalog.bundled_model_name():
                raise
    try:
        return load_policy(catalog.find(model).path)
    except CatalogError as exc:
        stored = evidence.models(store)
        if model is None or model not in stored:
            raise CatalogError(f"{exc} Models with evidence in {store.root_uri}: {stored}.") from None
    return kept_policy(store, model)


def kept_policy(store: ArtifactStore, model: str) -> Policy:
    """The policy file ``model``'s latest lifecycle run kept beside its artifacts, checked against the record."""
    import tempfile
    from pathlib import Path

    entry = evidence.find(store, model, kind="lifecycle")
    ref = LifecycleRecord.from_json(entry["record"]).policy if entry else None
    if ref is None or not ref.uri:
        raise CatalogError(
            f"Model {model!r} has evidence in {store.root_uri} but no kept policy file; name it with --policy."
        )
    data = read_recorded(store, ref.uri)  # found by its place in the store, wherever the store now is
    if data is None:
        raise CatalogError(f"The policy file {model!r}'s latest run kept ({ref.uri}) is no longer in the store.")
    if sha256_bytes(data) != ref.sha256:
        raise IntegrityError(f"The policy file kept at {ref.uri} is not the one its lifecycle record names.")
    folder = Path(tempfile.mkdtemp(prefix=f"fairgate-{model}-"))
    (folder / f"{model}.yaml").write_bytes(data)
    return load_policy(folder / f"{model}.yaml")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "policy":
            return cmd_policy(args)
        if args.command == "verify-bundle":
            return cmd_verify_bundle(args)
        store = open_store(args.artifact_root, s3_client=default_s3_client(args.artifact_root))
        if args.command == "status" and not (args.model or args.policy):
            names = _stored_models(store) or [e.name for e in catalog.entries()]
            if len(names) > 1:
                return _status_of_every_model(args, store, names)
        policy = load_policy(args.policy) if args.policy else _policy_of(store, args.model)
        if args.model and policy.model_name != args.model:
            raise InputError(f"--model {args.model!r} but the policy {args.policy} is for {policy.model_name!r}.")
        args.loaded_policy = policy
        code: int = args.fn(args, store, policy.model_name)
        return code
    except FairgateError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
        else:
            print(f"fairgate: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
