"""The OpenLineage answer of a recorded lifecycle run: datasets named as OpenLineage names them, and the
fairness facet carrying what the evidence record says (checked field by field, and against the
facet's published JSON Schema). The provider calling it on a real deployment is tested in
tests/integration/test_scheduler_backfill.py."""

from __future__ import annotations

import json

import jsonschema
import pytest
from tests.support.policies import synthetic_credit_policy

from fairgate.governance import evidence, lineage
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore
from fairgate_dev.local import REPO

SCHEMA = REPO / "docs" / "lineage" / "FairgateFairnessDatasetFacet.json"


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("s3://bucket/prefix/runs/x/snapshot.parquet", ("s3://bucket", "prefix/runs/x/snapshot.parquet")),
        ("file:///srv/store/runs/a%3Db/report.html", ("file", "/srv/store/runs/a=b/report.html")),
    ],
)
def test_dataset_names(uri, expected):
    assert lineage.dataset(uri) == expected


@pytest.mark.lifecycle
def test_the_facet_is_the_evidence_record(tmp_path):
    from openlineage.client.serde import Serde

    from fairgate_airflow.lineage import on_complete

    path, _ = synthetic_credit_policy(tmp_path, 3000, seed=4)
    store = LocalStore(tmp_path / "store")
    lifecycle.run_in_process(store, load_policy(path), RunInfo(dag_id="nb", run_id="r"))
    entry = evidence.find(store, "credit", "r")
    rec = entry["record"]

    answer = on_complete(rec, seq=entry["seq"], entry_hash=entry["hash"])
    assert [(d.namespace, d.name) for d in answer.inputs] == [("file", str(store.root / "runs/nb/r/snapshot.parquet"))]
    names = [d.name for d in answer.outputs]
    assert names == [
        str(store.root / store.key_of(rec[k]["uri"])) for k in ("model", "report", "model_card", "datasheet")
    ]
    facet = Serde.to_dict(answer.outputs[0].facets[lineage.FACET])
    assert facet["decision"] == rec["decision"] == "deployed"
    assert facet["evidenceHash"] == entry["hash"] and facet["evidenceSeq"] == entry["seq"]
    assert facet["modelVersion"] == rec["model"]["version"]
    assert (
        facet["metrics"]["gender.equal_opportunity_difference"]
        == rec["fairness"]["gender"]["equal_opportunity_difference"]["value"]
    )
    assert facet["_schemaURL"] == lineage.SCHEMA_URL == json.loads(SCHEMA.read_text())["$id"]
    own = json.loads(SCHEMA.read_text())["$defs"]["FairgateFairnessDatasetFacet"]["allOf"][1]
    jsonschema.validate({k: v for k, v in facet.items() if not k.startswith("_")}, own)
