"""A synthetic customer-churn dataset with a seed and an injectable drift.

The demo and the tests need realistic tabular data without downloading anything: numeric,
categorical and boolean columns, some missing values, and a label that depends on the features.
``drift`` shifts the feature distributions (and the label relationship) by a controlled amount.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["make_churn"]

PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")


def make_churn(n_rows: int = 5000, *, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """Return ``n_rows`` customers with a ``churned`` label; same seed, same frame.

    ``drift`` in [0, 1]: 0 is the reference population; larger values raise monthly charges,
    shift customers to the basic plan and the south region, and weaken tenure's effect.
    """
    import numpy as np
    import pandas as pd

    if n_rows < 1:
        raise ValueError("n_rows must be at least 1")
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(shape=2.0, scale=12.0 * (1 - 0.3 * drift), size=n_rows).round().astype(int)
    monthly = rng.normal(65 + 25 * drift, 20, size=n_rows).clip(10, 200).round(2)
    plan_p = np.array([0.4 + 0.3 * drift, 0.4 - 0.15 * drift, 0.2 - 0.15 * drift])
    plan = rng.choice(PLANS, size=n_rows, p=plan_p / plan_p.sum())
    region_p = np.array([0.25, 0.25 + 0.3 * drift, 0.25, 0.25 - 0.3 * drift]).clip(0.01)
    region = rng.choice(REGIONS, size=n_rows, p=region_p / region_p.sum())
    support_calls = rng.poisson(1.5 + 2 * drift, size=n_rows)
    autopay = rng.random(n_rows) < 0.6 - 0.2 * drift
    age = rng.normal(42, 12, size=n_rows).clip(18, 90).round()

    logit = (
        -1.0
        - 0.06 * tenure * (1 - 0.5 * drift)
        + 0.025 * (monthly - 65)
        + 0.35 * support_calls
        - 0.8 * autopay
        + np.where(plan == "premium", -0.6, np.where(plan == "basic", 0.4, 0.0))
    )
    churned = rng.random(n_rows) < 1 / (1 + np.exp(-logit))

    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n_rows, dtype=np.int64) + seed * 1_000_000,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "plan": pd.Categorical(plan, categories=PLANS),
            "region": pd.Categorical(region, categories=REGIONS),
            "support_calls": support_calls,
            "autopay": autopay,
            "age": age,
            "churned": churned,
        }
    )
    # Some customers never told us their age.
    missing = rng.random(n_rows) < 0.03
    frame.loc[missing, "age"] = np.nan
    return frame
