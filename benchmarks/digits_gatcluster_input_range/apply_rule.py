"""Apply the rule of DECLARED.md to the six runs' `loss.csv` files: the mean of Eq. 3 (`loss`)
and of the train big batches' `balance` over the last 25 iterations, per seed and input range,
and the decision. Test scores (metrics.json) are printed after the decision, for the
sensitivity table only.

    python benchmarks/digits_gatcluster_input_range/apply_rule.py RUNS_DIR

RUNS_DIR holds s{3,4,5}_{unit,symmetric}/loss.csv (and metrics.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

SEEDS, RANGES, LAST = (3, 4, 5), ("unit", "symmetric"), 25


def criteria(runs: Path) -> pd.DataFrame:
    rows = []
    for seed in SEEDS:
        for value in RANGES:
            curves = pd.read_csv(runs / f"s{seed}_{value}" / "loss.csv")
            if len(curves) != 300:
                raise SystemExit(f"s{seed}_{value}: {len(curves)} iterations logged, the rule needs 300")
            tail = curves.tail(LAST)
            rows.append({"seed": seed, "input_range": value, "eq3_last25": tail["loss"].mean(),
                         "balance_last25": tail["balance"].mean()})
    return pd.DataFrame(rows)


def decide(table: pd.DataFrame) -> str:
    wide = table.pivot(index="seed", columns="input_range")
    eligible = bool((wide["balance_last25"]["symmetric"] >= 0.90).all())
    wins = int((wide["eq3_last25"]["symmetric"] < wide["eq3_last25"]["unit"]).sum())
    return "symmetric" if eligible and wins >= 2 else "unit"


def main(runs: Path) -> None:
    table = criteria(runs)
    print(table.round(4).to_string(index=False))  # the rule compares the unrounded means
    print("decision:", decide(table))
    print("\ntest scores (not used to choose):")
    for seed in SEEDS:
        for value in RANGES:
            metrics = json.loads((runs / f"s{seed}_{value}" / "metrics.json").read_text())
            print(seed, value, metrics["acc"], metrics["nmi"], metrics["ari"], metrics["training"]["wall_seconds"])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
