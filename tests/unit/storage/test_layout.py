"""The store's key families, spelled once (fairgate.storage.layout), checked by hand."""

from __future__ import annotations

import re
from datetime import date

from fairgate.storage import layout
from fairgate_dev.local import REPO


def test_the_key_families_by_hand():
    assert layout.day_prefix("predictions", "credit", date(2026, 6, 3)) == "predictions/model=credit/date=2026-06-03"
    assert layout.day_prefix("audits", "credit", "2026-06-03") == "audits/model=credit/date=2026-06-03"
    assert layout.days_prefix("audits", "credit") == "audits/model=credit/date="
    assert layout.model_prefix("cases", "credit") == "cases/model=credit/"
    assert layout.day_of("predictions/model=credit/date=2026-06-03/online/x.json") == "2026-06-03"
    assert layout.model_of("predictions/model=credit/date=2026-06-03/part.parquet") == "credit"
    assert layout.run_prefix("fairgate_lifecycle__credit", "manual__2026-06-03T00:00:00+00:00") == (
        "runs/fairgate_lifecycle__credit/manual__2026-06-03T00_00_00_00_00"
    )
    assert layout.safe("a/b c..d=é") == "a_b_c..d=_"
    assert layout.date_partition(date(2026, 6, 3)) == "date=2026-06-03"


def test_no_other_module_spells_a_model_partition():
    """``model=`` keys are written by the layout module alone: a second spelling could drift from it."""
    spelled = [
        f"{path.relative_to(REPO)}:{n}"
        for root in (REPO / "include" / "fairgate", REPO / "plugins" / "fairgate_airflow")
        for path in root.rglob("*.py")
        if path.name != "layout.py"
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"[/\"']model=\{|(?<![A-Za-z_])date=\{", line)
    ]
    assert spelled == []
