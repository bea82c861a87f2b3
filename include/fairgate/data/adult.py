"""The data shipped with Fairgate: UCI Adult (CC BY 4.0), for the demo and the tests."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED_DIR = Path(str(resources.files("fairgate").joinpath("data")))  # package data, also in a wheel
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
