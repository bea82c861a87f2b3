"""Running a parsed DAG in the test process (``dag.test()``, a review answered through the REST API) and
reading what it recorded."""

from __future__ import annotations

from fairgate.governance import evidence

DAG_ID = "fairgate_lifecycle"


# The DAGs every model gets (each id suffixed with the model's name when a deployment lists models).
DAG_BASES = (
    "fairgate_lifecycle",
    "fairgate_score",
    "fairgate_ingest",
    "fairgate_audit",
    "fairgate_rollback",
    "fairgate_contest",
)


def run_dag(dag, *, review: tuple[str, str] | None = None):
    from fairgate_dev.local import Reviewer

    reviewer = Reviewer(DAG_ID, *review, timeout_s=300) if review else None
    if reviewer:
        reviewer.start()
    dr = dag.test()
    if reviewer:
        reviewer.stop()
        reviewer.join(5)
        assert reviewer.answered, f"the review was never answered (last error: {reviewer.error!r})"
        dr.review_request = reviewer.request
    return dr


def record_of(store, dr):
    entry = evidence.find(store, "adult_income", dr.run_id)
    assert entry is not None, f"no evidence for {dr.run_id}"
    return entry["record"]


def file_of(store, uri):
    return store.get(store.key_of(uri))
