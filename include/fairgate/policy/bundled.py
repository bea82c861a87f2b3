"""What the bundled policy names: UCI Adult's columns and the demo's simulated feed of incoming records.

The policy's defaults describe the bundled model, so the schema needs these names before any data is
read; the files themselves are read by :func:`fairgate.data.adult.read_adult`.
"""

from __future__ import annotations

ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
# The demo's simulated feed of incoming records: Adult test rows, so only for policies on Adult's columns.
SIMULATED_FEED = "simulated://adult-test"
