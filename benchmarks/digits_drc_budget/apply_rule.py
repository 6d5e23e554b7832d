"""The label-free budget rule declared in DECLARED.md, applied to a DRC loss.csv.

    python benchmarks/digits_drc_budget/apply_rule.py benchmarks/digits_drc_budget/epochs500_seed0/loss.csv

m(e) is the mean of the main head's Eq. 10 loss (`loss`) over epochs e-24 .. e; the budget is
the smallest e in {50, 75, ..., last} with m(e - 25) - m(e) < 0.01, else the last epoch. No
label and no test score is read.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

WINDOW = 25
TOLERANCE = 0.01


def plateau_budget(loss: pd.Series, window: int = WINDOW, tolerance: float = TOLERANCE) -> tuple[int, list[dict]]:
    """(budget, one row per checked epoch) for a per-epoch loss indexed by consecutive epochs
    from 1."""
    means = loss.rolling(window).mean()  # m(e): the mean over epochs e - window + 1 .. e
    last = int(loss.index.max())
    rows, budget = [], None
    for e in range(2 * window, last + 1, window):
        fall = float(means[e - window] - means[e])
        rows.append({"epoch": e, "mean_loss": round(float(means[e]), 4), "fall_over_window": round(fall, 4)})
        if budget is None and fall < tolerance:
            budget = e
    return (budget if budget is not None else last), rows


def main(loss_csv: Path) -> None:
    curves = pd.read_csv(loss_csv).set_index("epoch")
    budget, rows = plateau_budget(curves["loss"])
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"budget: {budget} epochs")


if __name__ == "__main__":
    typer.run(main)
