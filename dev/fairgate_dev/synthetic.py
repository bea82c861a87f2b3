"""Synthetic credit applications with a known, injected disparity and a known proxy.

Every applicant has a latent creditworthiness ``z ~ N(0, 1)``, independent of gender. Income,
loan amount, duration, savings and employment are noisy functions of ``z``; ``postcode_area``
is the proxy: it equals a gender-linked area for ``proxy_strength`` of the rows and is random
otherwise. The label ``approved`` is 1 when ``z + e > t_g`` (``e ~ N(0, noise²)``) with a
threshold per gender chosen so that the approval rate is exactly ``rate_privileged`` for men
and ``rate_unprivileged`` for women *in expectation*: the injected disparate impact is their
ratio (0.6 by default), and the proxy's ROC AUC for gender is ``(1 + proxy_strength) / 2``.

Run ``python -m fairgate_dev.synthetic OUT.csv [ROWS]`` to write a file, and
``python -m fairgate_dev.synthetic --feed FOLDER FIRST_DAY DAYS`` for a feed of new applications.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

TRUE_DI = 0.6


@dataclass(frozen=True)
class Truth:
    """What the generator put in, to compare the measured figures with."""

    rate_privileged: float = 0.5
    rate_unprivileged: float = 0.3
    proxy_strength: float = 0.9
    share_women: float = 0.45
    noise: float = 0.5

    @property
    def disparate_impact(self) -> float:
        return self.rate_unprivileged / self.rate_privileged

    @property
    def proxy_auc(self) -> float:
        return (1 + self.proxy_strength) / 2


def credit_applications(rows: int = 20_000, *, seed: int = 7, truth: Truth = Truth()) -> Any:
    import numpy as np
    import pandas as pd
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    women = rng.random(rows) < truth.share_women
    z = rng.normal(size=rows)
    spread = float(np.sqrt(1 + truth.noise**2))
    # P(z + e > t) = 1 - Phi(t / spread) = rate  =>  t = spread * Phi^-1(1 - rate)
    threshold = np.where(
        women, spread * norm.ppf(1 - truth.rate_unprivileged), spread * norm.ppf(1 - truth.rate_privileged)
    )
    approved = (z + rng.normal(scale=truth.noise, size=rows) > threshold).astype(int)
    linked = rng.random(rows) < truth.proxy_strength
    area_of_gender = np.where(women, "east", "west")
    postcode_area = np.where(linked, area_of_gender, rng.choice(["east", "west"], size=rows))
    return pd.DataFrame(
        {
            "application_id": [f"app-{i:07d}" for i in range(rows)],
            "gender": np.where(women, "female", "male"),
            "age": rng.integers(18, 76, size=rows),
            "income": np.round(np.exp(10.3 + 0.35 * z + rng.normal(scale=0.3, size=rows)), 2),
            "loan_amount": np.round(np.exp(9.0 - 0.15 * z + rng.normal(scale=0.5, size=rows)), 2),
            "duration_months": rng.choice([12, 24, 36, 48, 60], size=rows),
            "savings_band": pd.cut(
                z + rng.normal(scale=0.8, size=rows), [-np.inf, -0.5, 0.5, np.inf], labels=["low", "medium", "high"]
            ).astype(str),
            "employment": np.where(z + rng.normal(scale=1.0, size=rows) > -0.8, "employed", "unemployed"),
            "postcode_area": postcode_area,
            "approved": approved,
        }
    )


def write_feed(folder: str, first_day: str, days: int, rows_per_day: int = 600, *, seed: int = 8) -> None:
    """A feed of new applications (with their outcomes) as ``date=YYYY-MM-DD/part.csv`` partitions."""
    from datetime import date, timedelta
    from pathlib import Path

    feed = credit_applications(days * rows_per_day, seed=seed)
    feed["application_id"] = feed["application_id"].str.replace("app-", "new-")
    start = date.fromisoformat(first_day)
    for i in range(days):
        part = Path(folder) / f"date={(start + timedelta(days=i)).isoformat()}"
        part.mkdir(parents=True, exist_ok=True)
        feed.iloc[i * rows_per_day : (i + 1) * rows_per_day].to_csv(part / "part.csv", index=False)


def main(argv: list[str]) -> int:
    if not argv or (argv[0].startswith("-") and argv[0] != "--feed"):  # nothing, --help, or an unknown option
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] == "--feed":  # --feed FOLDER FIRST_DAY DAYS
        write_feed(argv[1], argv[2], int(argv[3]))
        print(f"Wrote {argv[3]} days of new applications under {argv[1]}.")
        return 0
    rows = int(argv[1]) if len(argv) > 1 else 20_000
    credit_applications(rows).to_csv(argv[0], index=False)
    print(f"Wrote {rows:,} synthetic applications to {argv[0]} (injected DI {TRUE_DI}).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
