"""Column names of the prediction log that its writers (scoring, SQL tables) and readers (the audit) share."""

from __future__ import annotations

LABEL_COLUMN = "outcome"  # the outcome of a scored record, once it has arrived: 1 favourable, 0 not
