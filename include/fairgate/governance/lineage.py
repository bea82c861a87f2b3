"""What a lifecycle run tells a lineage system: its inputs and outputs, and the fairness facet.

Plain data here (no OpenLineage import): :func:`datasets` names each input and output of a
recorded run as an OpenLineage ``(namespace, name)`` pair, and :func:`fairness_facet` is the
custom facet's content that ``fairgate_airflow.lineage`` attaches to every output, so a lineage
graph (Marquez, DataHub, ...) shows on the model and its evidence what the gate decided and why.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from fairgate.governance.records import LifecycleRecord

# The custom facet's name in an OpenLineage event, and the JSON Schema that defines it (docs/lineage/).
FACET = "fairgate_fairness"
SCHEMA_URL = "https://fairgate.invalid/spec/facets/1-0-0/FairgateFairnessDatasetFacet.json"


def dataset(uri: str) -> tuple[str, str]:
    """OpenLineage's naming: ``s3://bucket`` and the key; ``file`` and the absolute path."""
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        return f"s3://{parts.netloc}", parts.path.lstrip("/")
    if parts.scheme == "file":
        return "file", unquote(parts.path)
    if parts.scheme:
        return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") or parts.netloc
    return "file", uri


def datasets(record: LifecycleRecord) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The run's inputs (its snapshot) and outputs (registered model, report, card, datasheet)."""
    inputs = [dataset(record.data.uri)] if record.data and record.data.uri else []
    outputs = [
        dataset(ref.uri)
        for ref in (record.model, record.report, record.model_card, record.datasheet)
        if ref and ref.uri
    ]
    return inputs, outputs


def fairness_facet(record: LifecycleRecord, *, seq: int, entry_hash: str) -> dict[str, Any]:
    """The facet: the run's decision, the gate's outcome and key metrics, and the evidence record's hash."""
    metrics = {
        f"{key}.{metric}": value.get("value")
        for key, result in (record.fairness or {}).items()
        for metric, value in result.items()
        if metric != "counts" and isinstance(value, dict)
    }
    return {
        "decision": record.decision,
        "gateOutcome": record.gate.outcome if record.gate else None,
        "gateReasons": list(record.gate.reasons)[:5] if record.gate else [],
        "modelVersion": (record.model.version or record.model.sha256) if record.model else None,
        "balancedAccuracy": (record.performance or {}).get("balanced_accuracy"),
        "metrics": metrics,
        "evidenceSeq": seq,
        "evidenceHash": entry_hash,
        "modelName": record.model_name,
    }
