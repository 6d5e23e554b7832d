"""`results/report.md`: reproduced numbers beside the published ones, the per-round
progression, and the loss ablations of Fig. 2a from DVC experiments."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

# GCC Table 1 (ACC, NMI, ARI) and the reference numbers of DESIGN.md §6.
REFERENCES: dict[str, list[tuple[str, float, float, float]]] = {
    "cifar10": [
        ("GCC (paper, Table 1)", 0.904, 0.792, 0.799),
        ("SCAN (GCC Table 1)", 0.861, 0.796, 0.750),
        ("Pretext + K-means (GCC Table 1)", 0.659, 0.598, 0.509),
        ("K-means on pixels (GCC Table 1)", 0.229, 0.087, 0.049),
    ],
    "cifar100_20": [
        ("GCC (paper, Table 1)", 0.532, 0.527, 0.358),
        ("SCAN (GCC Table 1)", 0.483, 0.485, 0.314),
        ("Pretext + K-means (GCC Table 1)", 0.395, 0.402, 0.239),
        ("K-means on pixels (GCC Table 1)", 0.130, 0.084, 0.028),
    ],
    "stl10": [
        ("GCC (paper, Table 1)", 0.866, 0.759, 0.723),
        ("SCAN (GCC Table 1)", 0.818, 0.703, 0.661),
        ("Pretext + K-means (GCC Table 1)", 0.658, 0.604, 0.506),
        ("K-means on pixels (GCC Table 1)", 0.192, 0.125, 0.061),
    ],
    "fashion_mnist": [
        ("DCCS (train+test, best epoch; not in the GCC paper)", 0.756, 0.704, 0.623),
        ("Precise-feature clustering (median of 10)", 0.721, 0.719, 0.555),
        ("K-means on pixels (DESIGN.md §6; not reproduced: see the row of this run)", 0.559, 0.530, 0.388),
    ],
    "digits": [
        ("K-means on pixels (80/20 split, measured here)", 0.80, 0.76, 0.65),
    ],
}

ABLATIONS = (  # Fig. 2a: remove one loss of Eq. 12
    ("GCC (full)", {}),
    ("GCC-d (no L_d)", {"gcc.weights.d": 0}),
    ("GCC-cwm (no L_cwm)", {"gcc.weights.cwm": 0}),
    ("GCC-ml (no L_ml)", {"gcc.weights.ml": 0}),
)
WEIGHT_KEYS = ("gcc.weights.d", "gcc.weights.cwm", "gcc.weights.ml")


def _row(name: str, scores: dict[str, float], extra: str = "") -> str:
    return f"| {name} | {scores['acc']:.4f} | {scores['nmi']:.4f} | {scores['ari']:.4f} |{extra}"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    else:
        flat[prefix] = tree
    return flat


def _runs(experiments: list[dict]) -> list[tuple[str, dict, dict]]:
    """(kind, flat params, metrics) of every run in `dvc exp show --json`: the workspace,
    each commit ("commit") and each experiment of it ("experiment")."""
    runs = []
    for entry in experiments:
        kind = "workspace" if entry.get("rev") == "workspace" else "commit"
        candidates = [(kind, entry)]
        for group in entry.get("experiments") or []:
            candidates += [("experiment", rev) for rev in group.get("revs") or []]
        for run_kind, run in candidates:
            data = run.get("data") or {}
            params = _flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})
            metrics = ((data.get("metrics") or {}).get("results/metrics.json") or {}).get("data") or {}
            runs.append((run_kind, params, metrics))
    return runs


def ablation_rows(experiments: list[dict]) -> dict[str, dict[str, float]]:
    """From `dvc exp show --json`: the final scores of the committed run ("GCC (full)") and of
    its experiments that differ from it only by one loss weight set to 0 (Fig. 2a)."""
    runs = _runs(experiments)
    commits = [params for kind, params, _ in runs if kind == "commit"]
    if not commits:
        return {}
    baseline = {k: v for k, v in commits[0].items() if k not in WEIGHT_KEYS}
    found: dict[str, dict[str, float]] = {}
    for kind, params, metrics in runs:
        if kind == "workspace" or not metrics.get("final"):
            continue
        if {k: v for k, v in params.items() if k not in WEIGHT_KEYS} != baseline:
            continue  # other params changed too: not a pure loss ablation
        weights = {key: float(params.get(key, 1.0)) for key in WEIGHT_KEYS}
        for label, zeroed in ABLATIONS:
            if all(weights[k] == (0.0 if k in zeroed else 1.0) for k in WEIGHT_KEYS):
                found.setdefault(label, metrics["final"])
    return found


def read_experiments(cwd: str | Path = ".") -> list[dict]:
    """`dvc exp show --json` (empty when DVC is busy or there are no experiments)."""
    try:
        out = subprocess.run(["dvc", "exp", "show", "--json"], cwd=cwd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    try:
        parsed = json.loads(out.stdout)
    except json.JSONDecodeError:
        return []
    return parsed if isinstance(parsed, list) else []


def render_report(metrics: dict, meta: dict, params: dict, experiments: list[dict] | None) -> str:
    dataset = meta["dataset"]
    lines = [
        f"# GCC reproduction report: {dataset}",
        "",
        f"Dataset `{dataset}` ({meta['n_train']} train / {meta['n_test']} test images, "
        f"{meta['image_size']}x{meta['image_size']}, protocol `{meta['protocol']}`); "
        f"backbone `{params['pretrain']['backbone']}`; rounds {', '.join(metrics['rounds'])}. "
        "Scores on the test split: Hungarian ACC, NMI, ARI.",
        "",
        "## Reproduced vs. published",
        "",
        "| model | ACC | NMI | ARI |",
        "| --- | --- | --- | --- |",
        _row("**GCC, this run (final round)**", metrics["final"]),
        _row("cluster head (Stage I), this run", metrics["cluster_head"]),
        _row("pretext + K-means, this run", metrics["pretext_kmeans"]),
        _row("K-means on pixels, this run", metrics["kmeans_pixels"]),
    ]
    for name, acc, nmi, ari in REFERENCES.get(dataset, []):
        lines.append(_row(name, {"acc": acc, "nmi": nmi, "ari": ari}))
    if dataset not in ("cifar10", "cifar100_20", "stl10"):
        lines += ["", f"The GCC paper reports no `{dataset}` numbers; the rows below this run's are "
                  "the reference numbers of DESIGN.md."]
    lines += [
        "",
        "## Per-round progression",
        "",
        "| round | ACC | NMI | ARI | held-out agreement | train-bank fit |",
        "| --- | --- | --- | --- | --- | --- |",
        _row("Stage I head", metrics["cluster_head"], " | |"),
    ]
    for name, scores in metrics["rounds"].items():
        lines.append(_row(name, scores, f" {scores['heldout_agreement']:.4f} | {scores['train_bank_fit']:.4f} |"))
    lines += ["", "Held-out agreement: the fraction of a fresh draw from the round's fine-tuned G (never "
              "trained on) that the round's C(F(.)) assigns to the cluster it was generated for. "
              "Train-bank fit: the same fraction on the bank F and C were trained on in the round "
              "(a fit, not a held-out score). Neither reads labels.", "", "## Ablation (Fig. 2a)", ""]
    found = ablation_rows(experiments or [])
    if len(found) > 1:
        lines += ["| variant | ACC | NMI | ARI |", "| --- | --- | --- | --- |"]
        lines += [_row(label, found[label]) for label, _ in ABLATIONS if label in found]
        missing = [label for label, _ in ABLATIONS if label not in found]
        if missing:
            lines += ["", f"Not found among the experiments: {', '.join(missing)}."]
    else:
        lines += ["No ablation experiments found. Queue and run them, then rewrite this report:", "",
                  "```bash",
                  "dvc exp run --queue -S gcc.weights.d=0",
                  "dvc exp run --queue -S gcc.weights.cwm=0",
                  "dvc exp run --queue -S gcc.weights.ml=0",
                  "dvc exp run --run-all",
                  "gccluster report",
                  "```"]
    return "\n".join(lines) + "\n"


def write_report(params_file: str | Path, with_experiments: bool) -> Path:
    """Render results/report.md from the committed metrics (and experiments if asked)."""
    from gccluster import paths
    from gccluster.config import load_params, params_to_dict
    from gccluster.errors import UserError
    from gccluster.io import write_text

    params = load_params(params_file)
    for required in (paths.METRICS, paths.PREPARED_DIR / "meta.json"):
        if not Path(required).is_file():
            raise UserError(f"{required}: missing (run `dvc repro` first)")
    metrics = json.loads(paths.METRICS.read_text())
    if "final" not in metrics:
        raise UserError(f"{paths.METRICS}: no GCC rounds in it (run `dvc repro` first)")
    meta = json.loads((paths.PREPARED_DIR / "meta.json").read_text())
    experiments = read_experiments() if with_experiments else None
    write_text(paths.REPORT, render_report(metrics, meta, params_to_dict(params), experiments))
    return paths.REPORT
