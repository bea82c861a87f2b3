"""Contesting a decision: a case per contested decision, a person's outcome, and what the log then says.

A case is opened for one scored decision (row key and day), with what the person said and what
the reviewer will be shown: the record's decision, score, reasons, recourse and model version.
It is stored once (``cases/model=<m>/<case id>.json``, create-only) and appended to the model's
evidence log; a second contest of the same decision is refused while it is open, and after it
is decided. The reviewer upholds or overturns it with a rationale (through the contest DAG's HITL
task); the outcome is stored once beside the case and appended to the evidence log, and an
overturned decision is the one the prediction log's readers see from then on
(:func:`fairgate.monitoring.prediction_log.read_window` applies it, and the audit counts contests and
overturns per group).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from fairgate.errors import CaseError, ConflictError, NotFoundError
from fairgate.governance import evidence
from fairgate.models import recourse as rc
from fairgate.models.explain import Reason
from fairgate.monitoring.prediction_log import find_prediction, recourse_context
from fairgate.pages import render_markdown
from fairgate.storage import layout
from fairgate.values import plain

if TYPE_CHECKING:
    from fairgate.monitoring.prediction_log import CaseOutcomes
    from fairgate.policy.schema import Policy
    from fairgate.storage.base import ArtifactStore

Choice = Literal["Uphold", "Overturn"]


class Outcome(TypedDict):
    """How a case was decided (``cases/model=…/<case>.outcome.json``), stored once."""

    case_id: str
    kind: str
    choice: str
    rationale: str
    reviewer: str | None
    decided_at: str
    final_decision: int
    timed_out: bool
    seq: NotRequired[int]  # in the answer of :func:`decide`: the evidence entry it was appended as


class Case(TypedDict):
    """A contest or a review before harm (``cases/model=…/<case>.json``) with its ``outcome`` (None while open)."""

    case_id: str
    kind: Literal["contest", "review"]
    model: str
    row: str
    date: str
    model_version: str
    decision: int
    score: float
    reasons: list[Reason]
    groups: dict[str, Any]  # each protected column's value in the record
    recourse: dict[str, Any] | None  # a contest of an unfavourable decision: the recourse and its sentence
    reason: str
    opened_by: str
    opened_at: str
    outcome: NotRequired[Outcome | None]
    over_cap: NotRequired[bool]
    seq: NotRequired[int]


TIMED_OUT_RATIONALE = "no answer before the review timed out: the automatic decision stands"


def case_id(row: str, day: str, kind: str = "contest") -> str:
    """One case of each kind per scored decision; characters outside ``[A-Za-z0-9._=-]`` become ``_``."""
    return f"{kind}__" + layout.safe(f"{row}__{day}")


def _prefix(model: str) -> str:
    return layout.model_prefix("cases", model)


def _key(model: str, cid: str, suffix: str = "") -> str:
    return f"{_prefix(model)}{cid}{suffix}.json"


def read(store: ArtifactStore, model: str, cid: str) -> Case:
    """The case and its outcome (``outcome`` None while open)."""
    try:
        case: Case = json.loads(store.get(_key(model, cid)))
    except NotFoundError:
        raise CaseError(f"Model {model!r} has no contest {cid!r}.") from None
    try:
        case["outcome"] = json.loads(store.get(_key(model, cid, ".outcome")))
    except NotFoundError:
        case["outcome"] = None
    return case


def _owner_of(store: ArtifactStore, policy: Policy, row: str) -> str | None:
    """Another model whose prediction log holds ``row`` (for the refusal's message)."""
    import pandas as pd

    models = {layout.model_of(k) for k in store.list("predictions/model=")}
    for other in sorted(models - {policy.model_name}):
        keys = [k for k in store.list(layout.days_prefix("predictions", other)) if k.endswith("/part.parquet")][-90:]
        for key in keys:
            import io

            frame = pd.read_parquet(io.BytesIO(store.get(key)))
            if policy.dataset.row_key in frame.columns and (frame[policy.dataset.row_key].astype(str) == row).any():
                return other
    return None


def open_contest(
    store: ArtifactStore, policy: Policy, row: str, *, reason: str, opened_by: str, day: date | None = None
) -> Case:
    """Open a case for ``row``'s decision (the newest, or the one of ``day``), once; appended to the evidence."""
    reason = (reason or "").strip()
    if not reason:
        raise CaseError("A contest needs the person's reason (--reason); nothing was recorded.")
    found = find_prediction(store, policy, row, day=day)
    if found is None:
        other = _owner_of(store, policy, row)
        where = f"; it is a record of model {other!r} (use --model {other})" if other else ""
        raise CaseError(
            f"Model {policy.model_name!r} has no scored decision for {policy.dataset.row_key} {row!r}"
            f"{' on ' + day.isoformat() if day else ''}{where}. Nothing was recorded."
        )
    cid = case_id(row, found["date"])
    try:
        existing = read(store, policy.model_name, cid)
    except CaseError:
        existing = None
    if existing is not None:
        state = (
            f"decided: {existing['outcome']['choice']}"
            if existing["outcome"]
            else f"open since {existing['opened_at']}"
        )
        raise CaseError(
            f"The decision on {row} of {found['date']} is already contested (case {cid}, {state}); "
            "nothing was recorded twice."
        )
    recourse = None
    if found["decision"] == 0 and policy.recourse.actionable:
        model, scale, proxies = recourse_context(store, policy, found["model_version"])
        answer = rc.compute(model, found["inputs"], policy, scale=scale, proxies=proxies)
        recourse = {**answer.as_dict(), "text": rc.sentence(answer, policy)}
    case: Case = {
        "case_id": cid,
        "kind": "contest",
        "model": policy.model_name,
        "row": row,
        "date": found["date"],
        "model_version": found["model_version"],
        "decision": found["decision"],
        "score": found["score"],
        "reasons": found["reasons"],
        "groups": {c: found["inputs"].get(c) for c in policy.protected_columns},
        "recourse": recourse,
        "reason": reason,
        "opened_by": opened_by,
        "opened_at": datetime.now(UTC).isoformat(),
    }
    try:
        store.put_new(_key(policy.model_name, cid), json.dumps(case, sort_keys=True, default=str).encode())
    except ConflictError:
        raise CaseError(
            f"The decision on {row} of {found['date']} was contested at the same moment by someone "
            f"else (case {cid}); nothing was recorded twice."
        ) from None
    entry = evidence.append(
        store,
        policy.model_name,
        {
            "kind": "contest_opened",
            "run_id": cid,
            "case_id": cid,
            "row": row,
            "date": found["date"],
            "model_version": found["model_version"],
            "decision": found["decision"],
            "groups": case["groups"],
            "reason": reason,
            "opened_by": opened_by,
        },
        key=f"case/{cid}/opened",
    )
    return {**case, "seq": entry["seq"], "outcome": None}


def open_reviews(store: ArtifactStore, policy: Policy, day: date, queue: Any) -> list[str]:
    """A review case for each decision on the day's review queue (``review_triggers``), opened once: a
    re-scored day keeps the cases it had. The ids of the cases still open, for the reviewers."""
    assert policy.dataset.row_key is not None  # scoring refuses a policy without one
    open_ids = []
    for item in queue.to_dict("records"):
        row = str(item[policy.dataset.row_key])
        cid = case_id(row, day.isoformat(), "review")
        try:
            if read(store, policy.model_name, cid)["outcome"] is None:
                open_ids.append(cid)
            continue
        except CaseError:
            pass
        case: Case = {
            "case_id": cid,
            "kind": "review",
            "model": policy.model_name,
            "row": row,
            "date": day.isoformat(),
            "model_version": item["model_version"],
            "decision": int(item["decision"]),
            "score": float(item["score"]),
            "reasons": [],
            "groups": {c: plain(item.get(c)) for c in policy.protected_columns},
            "recourse": None,
            "reason": "; ".join(json.loads(item["review_reasons"])),
            "opened_by": "review_triggers",
            "opened_at": datetime.now(UTC).isoformat(),
            "over_cap": item["review_status"] == "over_cap",
        }
        try:
            store.put_new(_key(policy.model_name, cid), json.dumps(case, sort_keys=True, default=str).encode())
        except ConflictError:
            continue
        open_ids.append(cid)
    return open_ids


def decide(
    store: ArtifactStore,
    policy: Policy,
    cid: str,
    *,
    choice: str | None,
    rationale: str | None,
    reviewer: str | None,
    timed_out: bool = False,
) -> Outcome:
    """Record the reviewer's outcome once: ``Uphold`` keeps the decision, ``Overturn`` reverses it.

    A review before harm that nobody answered in time is recorded as upheld (the automatic decision
    stands), with ``timed_out``; a contest has no timeout."""
    if timed_out:  # nobody answered: whatever the form held, the automatic decision stands
        choice, rationale, reviewer = "Uphold", TIMED_OUT_RATIONALE, None
    case = read(store, policy.model_name, cid)
    if case["outcome"] is not None:
        raise CaseError(f"Case {cid} was already decided ({case['outcome']['choice']}); nothing was recorded twice.")
    rationale = (rationale or "").strip()
    if choice not in ("Uphold", "Overturn"):
        raise CaseError(f"A contest is decided with 'Uphold' or 'Overturn'. Got {choice!r}; the case stays open.")
    if not rationale:
        raise CaseError(f"Case {cid}: a rationale is required to {choice.lower()} a decision; the case stays open.")
    final = 1 - int(case["decision"]) if choice == "Overturn" else int(case["decision"])
    outcome: Outcome = {
        "case_id": cid,
        "kind": case["kind"],
        "choice": choice,
        "rationale": rationale,
        "reviewer": reviewer,
        "decided_at": datetime.now(UTC).isoformat(),
        "final_decision": final,
        "timed_out": timed_out,
    }
    try:
        store.put_new(_key(policy.model_name, cid, ".outcome"), json.dumps(outcome, sort_keys=True).encode())
    except ConflictError:
        raise CaseError(
            f"Case {cid} was decided by someone else at the same moment; nothing was recorded twice."
        ) from None
    entry = evidence.append(
        store,
        policy.model_name,
        {
            **outcome,
            "kind": f"{case['kind']}_decided",
            "run_id": cid,
            "row": case["row"],
            "date": case["date"],
            "groups": case["groups"],
            "decision": case["decision"],
        },
        key=f"case/{cid}/decided",
    )
    return {**outcome, "seq": entry["seq"]}


def cases_of(store: ArtifactStore, model: str) -> list[Case]:
    """Every case of ``model`` with its outcome."""
    keys = [k for k in store.list(_prefix(model)) if not k.endswith(".outcome.json")]
    return [read(store, model, k.rsplit("/", 1)[1].removesuffix(".json")) for k in keys]


def outcomes_by_day(store: ArtifactStore, model: str) -> CaseOutcomes | None:
    """Per scored day, each row with a case: its kind and final decision (None while open); None when the
    model has never had a case (the audit's window then has no case columns)."""
    if not store.list(_prefix(model)):
        return None
    out: CaseOutcomes = {}
    for case in cases_of(store, model):
        final = case["outcome"]["final_decision"] if case["outcome"] else None
        out.setdefault(case["date"], {})[str(case["row"])] = (case["kind"], final)
    return out


def for_days(store: ArtifactStore, model: str, days: list[str]) -> list[Case]:
    """The cases of decisions scored on ``days``."""
    wanted = set(days)
    return [c for c in cases_of(store, model) if c["date"] in wanted]


@dataclass(frozen=True)
class ReviewRequest:
    """What a reviewer is asked: the subject, the body (Markdown) and how long the question stays open."""

    subject: str
    body: str
    timeout_hours: float | None  # None: a contest waits for its answer


def review_request(case: Case, policy: Policy) -> ReviewRequest:
    """The question for a case that is still open: a review before harm times out after the policy's
    ``review_triggers.timeout_hours`` (the decision then stands); a person's contest waits for its answer."""
    if case["outcome"] is not None:
        raise CaseError(f"Case {case['case_id']} was already decided ({case['outcome']['choice']}).")
    if case["kind"] == "review":
        return ReviewRequest(
            "Fairgate: review a decision before it takes effect",
            review_body(case, policy),
            float(policy.review_triggers.timeout_hours),
        )
    return ReviewRequest("Fairgate: a person contests a decision", review_body(case, policy), None)


def review_body(case: Case, policy: Policy) -> str:
    """What the reviewer reads (Markdown; every value escaped)."""
    return render_markdown(
        "contest.md.j2",
        case=case,
        model=policy.model_name,
        row_key=policy.dataset.row_key,
        verdict="favourable" if case["decision"] == 1 else "unfavourable",
        review=case["kind"] == "review",
    )
