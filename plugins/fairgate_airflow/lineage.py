"""OpenLineage for the lifecycle: the evidence stage reports its inputs and outputs with the fairness facet.

Airflow's OpenLineage provider calls ``get_openlineage_facets_on_complete`` on an operator after it
succeeds; :func:`on_complete` builds that answer from the recorded run (``fairgate.governance.lineage``
decides what goes in it). Without the provider installed, or with no transport configured,
nothing is emitted and the lifecycle runs as before.
"""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import DatasetFacet


@attr.define
class FairgateFairnessDatasetFacet(DatasetFacet):
    """What Fairgate decided about the run that produced this dataset (schema: docs/lineage/)."""

    decision: str | None = attr.field(default=None)
    gateOutcome: str | None = attr.field(default=None)
    gateReasons: list[str] = attr.field(factory=list)
    modelVersion: str | None = attr.field(default=None)
    balancedAccuracy: float | None = attr.field(default=None)
    metrics: dict[str, float | None] = attr.field(factory=dict)
    evidenceSeq: int | None = attr.field(default=None)
    evidenceHash: str | None = attr.field(default=None)
    modelName: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        from fairgate.governance.lineage import SCHEMA_URL

        return SCHEMA_URL


def on_complete(record: dict[str, Any], *, seq: int, entry_hash: str) -> Any:
    """The ``OperatorLineage`` of a recorded lifecycle run."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    from fairgate.governance import lineage
    from fairgate.governance.records import LifecycleRecord

    rec = LifecycleRecord.from_json(record)
    inputs, outputs = lineage.datasets(rec)
    facet = FairgateFairnessDatasetFacet(**lineage.fairness_facet(rec, seq=seq, entry_hash=entry_hash))
    return OperatorLineage(
        inputs=[Dataset(namespace=ns, name=name) for ns, name in inputs],
        outputs=[Dataset(namespace=ns, name=name, facets={lineage.FACET: facet}) for ns, name in outputs],
    )
