"""Where each item of the EU AI Act's technical documentation is answered by a release's evidence.

:data:`ITEMS` maps the points of Annex IV of Regulation (EU) 2024/1689 (technical documentation of
a high-risk AI system), and the articles it leans on (10 data governance, 12 record-keeping, 13
transparency, 14 human oversight, 15 accuracy and robustness), to the evidence fields and bundle
members that answer them, with an honest coverage: ``covered`` (the evidence answers it),
``partial`` (it answers part; ``gap`` says what is left) or ``not_covered`` (outside what a
pipeline can know, such as the declaration of conformity). The items are paraphrased, not quoted;
read the regulation for its wording.

:func:`for_release` fills the map from one release's evidence (what the bundle carries), so the
map is generated for each release rather than written by hand; :func:`reference` renders the map
without values (``docs/annex_iv.md`` is its output, and a test keeps the two equal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from fairgate.pages import render_markdown

Coverage = Literal["covered", "partial", "not_covered"]


@dataclass(frozen=True)
class Item:
    ref: str
    topic: str
    coverage: Coverage
    sources: tuple[str, ...] = ()  # record.<path> | manifest.<path> | member.<file> | count.<kind>
    how: str = ""
    gap: str = ""


ITEMS: tuple[Item, ...] = (
    Item(
        "Annex IV 1(a)",
        "Intended purpose, provider, name and version of the system",
        "partial",
        ("manifest.model", "manifest.version", "manifest.registered_at", "member.model_card.md"),
        "model name, content-addressed version and registration time; the model card's intended use",
        "the provider's name and the system's intended purpose in the provider's words are not recorded",
    ),
    Item(
        "Annex IV 1(b)",
        "Interaction with hardware, software and other AI systems",
        "not_covered",
        (),
        "",
        "the systems the model is embedded in are outside the pipeline",
    ),
    Item(
        "Annex IV 1(c)",
        "Versions of the relevant software and requirements on updates",
        "partial",
        ("record.code_version", "manifest.estimator", "manifest.policy_sha256"),
        "the code version, the estimator and the policy hash of the run that produced the model",
        "library versions are pinned in the project's lock file, not copied into each release",
    ),
    Item(
        "Annex IV 1(d)-(f)",
        "Forms placed on the market, hardware, external features",
        "not_covered",
        (),
        "",
        "product and hardware facts are the provider's",
    ),
    Item(
        "Annex IV 1(g)-(h)",
        "User interface for deployers and instructions for use",
        "partial",
        ("member.model_card.md",),
        "the model card (intended use, factors, metrics, caveats); the Fairness view and CLI are documented "
        "in the project README",
        "instructions for a specific deployer are the provider's",
    ),
    Item(
        "Annex IV 2(a)",
        "Methods and steps of development, including third-party tools",
        "covered",
        ("record.model.estimator", "manifest.mitigation", "record.search.rule", "record.dag_id", "record.run_id"),
        "the estimator, the mitigation chosen by the search (every candidate with its validation figures), "
        "and the orchestrated run that produced the model",
    ),
    Item(
        "Annex IV 2(b)",
        "Design choices, assumptions about persons or groups, what is optimised, trade-offs",
        "partial",
        ("record.gate.thresholds", "record.search.rule", "record.comparison", "member.policy.yaml"),
        "protected attributes and fairness bounds in the policy, the selection rule, and the fairness-accuracy "
        "comparison of candidate, unmitigated and production models",
        "the rationale for each bound and for the protected attributes chosen is the team's",
    ),
    Item(
        "Annex IV 2(c)",
        "System architecture and computational resources",
        "partial",
        ("record.dag_id", "record.run_id"),
        "the lifecycle DAG that trained and gated the model",
        "compute used for training is not recorded",
    ),
    Item(
        "Annex IV 2(d)",
        "Data requirements: datasheets, provenance, scope, selection, labelling, cleaning",
        "covered",
        (
            "member.datasheet.md",
            "record.data.sha256",
            "record.data.source",
            "record.data.rows",
            "record.quality.passed",
            "record.datasheet.missing",
        ),
        "the datasheet of the snapshot (profile, group representation per split, filters, quality results) "
        "with its sha256 and source; questions only the team can answer are listed when unanswered",
    ),
    Item(
        "Annex IV 2(e)",
        "Human oversight measures needed (Article 14)",
        "covered",
        ("record.review", "manifest.approver", "manifest.review_rules", "record.gate.outcome"),
        "the gate's review route (Airflow HITL), or review of every promotion (`review.required: always`); "
        "approvers, a quorum of different people and separation from the run's trigger; every answer with "
        "its reviewer and rationale, timeout as rejection",
    ),
    Item(
        "Annex IV 2(f)",
        "Pre-determined changes and how compliance is kept",
        "partial",
        ("member.policy.yaml", "record.gate.champion"),
        "each retraining passes the same gate; the champion rule bounds what a new version may lose",
        "the retraining plan itself is the provider's",
    ),
    Item(
        "Annex IV 2(g)",
        "Validation and testing: data, metrics, discriminatory impacts, dated test reports",
        "covered",
        (
            "record.gate.measured_on",
            "record.performance",
            "record.fairness",
            "record.robustness",
            "member.report.html",
            "record.recorded_at",
        ),
        "measured once on the held-out test split: performance, every fairness metric per group with its "
        "interval, robustness when enabled; the dated run report, hash-chained in the evidence log",
        "reports carry the approver's name, not a cryptographic signature",
    ),
    Item(
        "Annex IV 2(h)",
        "Cybersecurity measures",
        "partial",
        ("manifest.model_sha256", "member.model.skops"),
        "models stored content-addressed, loaded only after a sha256 check with an explicit skops trusted-type "
        "list; the evidence log is append-only and hash-chained",
        "a security assessment of the deployment is the provider's",
    ),
    Item(
        "Annex IV 3",
        "Capabilities and limitations, accuracy for specific groups, foreseeable risks, input data",
        "covered",
        (
            "record.performance",
            "record.fairness",
            "record.bias.proxies",
            "record.bias.short_of_evidence",
            "member.model_card.md",
        ),
        "overall and per-group figures with intervals, proxy warnings, groups with too little evidence, and "
        "the input columns the model needs",
    ),
    Item(
        "Annex IV 4",
        "Appropriateness of the performance metrics",
        "partial",
        ("record.gate.thresholds",),
        "the gated metrics and their bounds, each defined in the project's documentation",
        "why these metrics suit the use is the team's argument",
    ),
    Item(
        "Annex IV 5",
        "Risk management system (Article 9)",
        "partial",
        ("manifest.impact_assessment", "manifest.owners", "member.model_card.md"),
        "the policy's impact assessment (who could be adversely affected, misuse, redress, severity, "
        "mitigations) and owners, kept in each release's manifest and model card; with `review.required: "
        "always` no version is deployed while one is unanswered",
        "the risk management process itself is organisational; Fairgate supplies evidence of bias risks to it",
    ),
    Item(
        "Annex IV 6",
        "Relevant changes through the lifecycle",
        "covered",
        ("count.lifecycle", "count.rollback", "member.evidence/HEAD.json"),
        "every lifecycle run, deployment and rollback of this version, hash-chained to the log head",
    ),
    Item(
        "Annex IV 7",
        "Harmonised standards or other specifications applied",
        "not_covered",
        (),
        "",
        "not known to the pipeline",
    ),
    Item("Annex IV 8", "EU declaration of conformity", "not_covered", (), "", "issued by the provider"),
    Item(
        "Annex IV 9",
        "Post-market monitoring system and plan (Article 72)",
        "covered",
        ("count.audit", "member.policy.yaml", "member.post_market_plan.md"),
        "the nightly audit of the deployed version (fairness with intervals, drift, performance once outcomes "
        "arrive), its alerts and retraining requests, each audit in the evidence log; the plan (what is "
        "measured, how often, thresholds, owners, incidents) generated from the approving policy",
        "",
    ),
    Item(
        "Article 10",
        "Data governance: examination for biases, measures to detect, prevent and mitigate them",
        "covered",
        ("record.bias.detected", "record.bias.measured_on", "record.mitigation", "record.bias.proxies"),
        "disparity measured on the training rows, the mitigation search, and the proxy check",
    ),
    Item(
        "Article 12",
        "Record-keeping: automatic logs over the system's lifetime",
        "covered",
        ("member.evidence/HEAD.json", "count.audit"),
        "the append-only, hash-chained evidence log and the prediction log (each decision with its model "
        "version and reasons)",
    ),
    Item(
        "Article 13",
        "Transparency: information for deployers, including accuracy per group",
        "partial",
        ("member.model_card.md", "member.report.html"),
        "model card and run report; per-decision reasons from the prediction log",
        "deployer-specific instructions are the provider's",
    ),
    Item(
        "Article 14",
        "Human oversight: understand, monitor, override, stop",
        "covered",
        ("record.review", "count.rollback"),
        "human review before deployment when the gate asks, rollback by DAG or CLI, the Fairness view",
    ),
    Item(
        "Article 15",
        "Accuracy, robustness and cybersecurity",
        "partial",
        ("record.performance", "record.robustness", "manifest.model_sha256"),
        "declared accuracy with intervals; decision stability and counterfactual checks when the policy "
        "enables them; integrity checks on every load",
        "adversarial robustness is not tested",
    ),
    Item(
        "Article 73",
        "Reporting of serious incidents",
        "partial",
        ("count.incident", "member.incidents.json"),
        "incident records opened by a degraded audit, an overturn rate above the policy's bound or a person, "
        "each with its reporting clock (15, 2 or 10 days), owner, actions and closing rationale; the nightly "
        "deadline sweep fails while one is open past its deadline",
        "the report to the market surveillance authority, and the investigation, are the provider's",
    ),
)


def _lookup(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def for_release(manifest: dict[str, Any], records: list[dict[str, Any]], *, members: list[str]) -> dict[str, Any]:
    """The map filled from one release: per item, what each source holds for it (or that it is absent)."""
    lifecycle = [r for r in records if r.get("kind") == "lifecycle"]
    deploying = next(
        (r for r in reversed(lifecycle) if (r.get("deployment") or {}).get("version")),
        lifecycle[-1] if lifecycle else {},
    )
    items = []
    for item in ITEMS:
        evidence = []
        for source in item.sources:
            kind, _, path = source.partition(".")
            if kind == "record":
                value = _lookup(deploying, path)
            elif kind == "manifest":
                value = _lookup(manifest, path)
            elif kind == "member":
                value = f"{path} (in this bundle)" if path in members else None
            else:
                value = sum(1 for r in records if r.get("kind") == path)
            evidence.append({"source": source, "value": None if value in (None, [], {}) else _short(value)})
        items.append(
            {
                "ref": item.ref,
                "topic": item.topic,
                "coverage": item.coverage,
                "how": item.how,
                "gap": item.gap,
                "evidence": evidence,
                "absent": [e["source"] for e in evidence if e["value"] is None],
            }
        )
    return {
        "regulation": "Regulation (EU) 2024/1689, Annex IV and Articles 10, 12-15",
        "model": manifest.get("model"),
        "version": manifest.get("version"),
        "deploying_run": deploying.get("run_id"),
        "items": items,
        "coverage": {c: sum(1 for i in ITEMS if i.coverage == c) for c in ("covered", "partial", "not_covered")},
    }


def markdown(mapping: dict[str, Any]) -> str:
    """One release's map as Markdown (every value as literal text)."""
    return render_markdown("annex_iv.md.j2", mapping=mapping, release=True)


def reference() -> str:
    """The map without a release's values: ``docs/annex_iv.md``."""
    items = [
        {
            "ref": i.ref,
            "topic": i.topic,
            "coverage": i.coverage,
            "how": i.how,
            "gap": i.gap,
            "evidence": [{"source": s, "value": None} for s in i.sources],
            "absent": [],
        }
        for i in ITEMS
    ]
    mapping = {
        "regulation": "Regulation (EU) 2024/1689, Annex IV and Articles 10, 12-15",
        "items": items,
        "coverage": {c: sum(1 for i in ITEMS if i.coverage == c) for c in ("covered", "partial", "not_covered")},
    }
    return render_markdown("annex_iv.md.j2", mapping=mapping, release=False)
