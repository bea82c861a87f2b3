"""What a lifecycle run tells a lineage system: its inputs and outputs, and the fairness facet.

Plain data here (no OpenLineage import): :func:`datasets` names each input and output of a
recorded run as an OpenLineage ``(namespace, name)`` pair, and :func:`fairness_facet` is the
custom facet's content that ``fairgate_airflow.lineage`` attaches to every output, so a lineage
graph (Marquez, DataHub, ...) shows on the model and its evidence what the gate decided and why.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

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


def datasets(record: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The run's inputs (its snapshot) and outputs (registered model, report, card, datasheet)."""
    data = record.get("data") or {}
    inputs = [dataset(data["uri"])] if data.get("uri") else []
    outputs = [
        dataset(ref["uri"])
        for ref in (record.get("model"), record.get("report"), record.get("model_card"), record.get("datasheet"))
        if ref and ref.get("uri")
    ]
    return inputs, outputs


def fairness_facet(record: dict[str, Any], *, seq: int, entry_hash: str) -> dict[str, Any]:
    """The facet: the run's decision, the gate's outcome and key metrics, and the evidence record's hash."""
    fairness = record.get("fairness") or {}
    metrics = {
        f"{key}.{metric}": value.get("value")
        for key, result in fairness.items()
        for metric, value in result.items()
        if metric != "counts" and isinstance(value, dict)
    }
    gate = record.get("gate") or {}
    return {
        "decision": record.get("decision"),
        "gateOutcome": gate.get("outcome"),
        "gateReasons": list(gate.get("reasons") or [])[:5],
        "modelVersion": (record.get("model") or {}).get("version") or (record.get("model") or {}).get("sha256"),
        "balancedAccuracy": (record.get("performance") or {}).get("balanced_accuracy"),
        "metrics": metrics,
        "evidenceSeq": seq,
        "evidenceHash": entry_hash,
        "modelName": record.get("model_name"),
    }
