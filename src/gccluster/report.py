"""`results/report.md`: the leaderboard (every method of this run beside the published
numbers), the per-round progression, and the loss ablations of Fig. 2a from DVC
experiments; `gccluster leaderboard`: min / median / max of every method over seeds."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from pathlib import Path
from typing import Any

from gccluster.baselines.registry import KIND_NOTES, METHODS

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
    "fashion_mnist": [  # the baselines' numbers come from their registry
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


def _cell(value: Any) -> str:
    return "–" if value is None else f"{value:.4f}"


def _row(name: str, scores: dict[str, float], extra: str = "") -> str:
    """ACC, NMI, ARI ("–" where the data has no labels)."""
    return f"| {name} | {_cell(scores.get('acc'))} | {_cell(scores.get('nmi'))} | {_cell(scores.get('ari'))} |{extra}"


def _diagnostics(scores: dict) -> str:
    """The label-free columns of a leaderboard row: cluster balance and silhouette."""
    return f" {_cell(scores.get('balance'))} | {_cell(scores.get('silhouette'))} |"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    else:
        flat[prefix] = tree
    return flat


def _runs(experiments: list[dict], metrics_file: str | None = "results/metrics.json") -> list[tuple[str, dict, dict]]:
    """(kind, flat params, metrics) of every run in `dvc exp show --json`: the workspace,
    each commit ("commit") and each experiment of it ("experiment"). `metrics` is the data
    of `metrics_file`, or with None {file: data} of every metrics file of the run."""
    runs = []
    for entry in experiments:
        kind = "workspace" if entry.get("rev") == "workspace" else "commit"
        candidates = [(kind, entry)]
        for group in entry.get("experiments") or []:
            candidates += [("experiment", rev) for rev in group.get("revs") or []]
        for run_kind, run in candidates:
            data = run.get("data") or {}
            params = _flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})
            files = {path: (entry or {}).get("data") or {} for path, entry in (data.get("metrics") or {}).items()}
            runs.append((run_kind, params, files if metrics_file is None else files.get(metrics_file, {})))
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


def _baseline_note(scores: dict) -> str:
    """How a baseline's training ended, for the leaderboard: steps, wall time, and why it
    stopped when that was not the end of its budget."""
    training = scores.get("training") or {}
    parts = []
    if "encoder_steps" in training:
        parts.append(f"{training['encoder_steps']} encoder steps")
    elif "epochs" in training:
        parts.append(f"{training['epochs']} epochs")
    elif "iterations" in training:
        parts.append(f"{training['iterations']} iterations")
    if "paper_fraction" in training:
        parts.append(f"{training['paper_fraction']:.2%} of the paper's budget")
    if "wall_seconds" in training:
        parts.append(f"{training['wall_seconds']:.0f} s")
    reason = training.get("stop_reason", "")
    if reason and not reason.startswith("budget"):
        parts.append(f"stopped: {reason}")
    elif reason:
        parts.append("the whole budget")
    return "; ".join(parts)


def result_note(metrics: dict) -> str:
    """Which round is the GCC result (`metrics["final"]["round"]`, written by `evaluate` after
    `gcc.select_round`), and why; runs written before the rule name no round: the last one."""
    chosen, rounds = metrics["final"].get("round"), list(metrics.get("rounds", {}))
    if chosen is None:
        return "the last round"
    if rounds and chosen != rounds[-1]:
        return f"round {chosen}: held-out agreement stopped rising after it (`gcc.select_round`)"
    return f"round {chosen}, the last"


def leaderboard_rows(metrics: dict, baselines: dict[str, dict]) -> list[tuple[str, dict, str]]:
    """(method, scores, note) of every method of one run: GCC's models and each baseline."""
    rows = [
        ("**GCC (result)**", metrics["final"], result_note(metrics)),
        ("GCC cluster head (Stage I)", metrics["cluster_head"], "Eq. 2"),
        ("pretext (SimCLR) + K-means", metrics["pretext_kmeans"], ""),
        ("K-means on pixels", metrics["kmeans_pixels"], "the floor"),
    ]
    for name, scores in baselines.items():
        title = METHODS[name].title if name in METHODS else name
        rows.append((title, scores, _baseline_note(scores)))
    return rows


def published_rows(dataset: str, protocol: str) -> list[tuple[str, dict, str]]:
    """The papers' numbers for `dataset`: GCC's Table 1 and DESIGN.md's references, then each
    registered baseline's, with the protocol and the kind of number each paper printed."""
    rows = [(name, {"acc": acc, "nmi": nmi, "ari": ari}, "")
            for name, acc, nmi, ari in REFERENCES.get(dataset, [])]
    for info in METHODS.values():
        for score in info.published:
            if score.dataset != dataset:
                continue
            same = "same protocol as this run" if score.protocol == protocol else "other protocol than this run"
            note = f"{score.source}, `{score.protocol}` ({same}); {KIND_NOTES[score.kind]}"
            rows.append((f"{info.title} (paper)", {"acc": score.acc, "nmi": score.nmi, "ari": score.ari}, note))
    return rows


def render_report(metrics: dict, meta: dict, params: dict, experiments: list[dict] | None,
                  baselines: dict[str, dict] | None = None) -> str:
    dataset, protocol = meta["dataset"], meta["protocol"]
    labeled = meta.get("labeled", True)
    split = "test split" if protocol == "train" else "train+test images the methods were fit on"
    scored = ("Hungarian ACC, NMI, ARI, and the label-free cluster balance and silhouette"
              if labeled else "the label-free cluster balance and silhouette (no class subfolders: no ACC, NMI, ARI)")
    lines = [
        f"# GCC reproduction report: {dataset}",
        "",
        f"Dataset `{dataset}` ({meta['n_train']} train / {meta['n_test']} test images, "
        f"{meta['image_size']}x{meta['image_size']}, protocol `{protocol}`); "
        f"backbone `{params['pretrain']['backbone']}`; rounds {', '.join(metrics['rounds'])}. "
        f"Scores on the {split}: {scored}.",
        "",
        "## Leaderboard",
        "",
        "This run (one seed, `base.seed`; `gccluster leaderboard` gives min / median / max over seeds):",
        "",
        "| method | ACC | NMI | ARI | balance | silhouette | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_row(name, scores, f"{_diagnostics(scores)} {note} |")
              for name, scores, note in leaderboard_rows(metrics, baselines or {})]
    lines += ["", "Balance: entropy of the test images per predicted cluster over log K (1 = equal "
              "sizes). Silhouette: of the features each method clusters (pixels, the K-means space, "
              "F(x), a baseline's own), Euclidean, on up to 2,000 test images. Each image's cluster: "
              "`results/assignments/<method>.csv`."]
    published = published_rows(dataset, protocol)
    lines += ["", "Published:", ""]
    if published:
        lines += ["| method | ACC | NMI | ARI | note |", "| --- | --- | --- | --- | --- |"]
        lines += [_row(name, scores, f" {note} |") for name, scores, note in published]
    elif dataset == "image_folder":
        lines.append("Your own image folder: no paper's numbers apply.")
    else:
        lines.append(f"No paper of the five reports `{dataset}`.")
    if dataset not in ("cifar10", "cifar100_20", "stl10") and dataset != "image_folder":
        lines += ["", f"The GCC paper reports no `{dataset}` numbers."]
    lines += [
        "",
        "## Per-round progression",
        "",
        "| round | ACC | NMI | ARI | held-out agreement | train-bank fit | balance | silhouette |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        _row("Stage I head", metrics["cluster_head"], f" | |{_diagnostics(metrics['cluster_head'])}"),
    ]
    for name, scores in metrics["rounds"].items():
        label = f"{name} (the result)" if name == metrics["final"].get("round") else name
        lines.append(_row(label, scores, f" {scores['heldout_agreement']:.4f} | {scores['train_bank_fit']:.4f} |"
                                         f"{_diagnostics(scores)}"))
    lines += ["", "Held-out agreement: the fraction of a fresh draw from the round's fine-tuned G (never "
              "trained on) that the round's C(F(.)) assigns to the cluster it was generated for. "
              "Train-bank fit: the same fraction on the bank F and C were trained on in the round "
              "(a fit, not a held-out score). Neither reads labels. The GCC result is the round "
              f"`gcc.select_round` names ({result_note(metrics)}): with `heldout_stop`, the default, the "
              "first round whose successor's held-out agreement is not higher (stop when it stops rising; "
              "the rounds after it are shown, never chosen); with `last`, the last round.", "", "## Ablation (Fig. 2a)", ""]
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
    baselines = {}
    for name in params.baselines.run:
        path = paths.BaselinePaths(name).metrics
        if not path.is_file():
            raise UserError(f"{path}: missing (run `dvc repro` first: baselines.run lists {name})")
        baselines[name] = json.loads(path.read_text())
    experiments = read_experiments() if with_experiments else None
    write_text(paths.REPORT, render_report(metrics, meta, params_to_dict(params), experiments, baselines))
    return paths.REPORT


BASELINE_METRICS = re.compile(r"^results/baselines/([^/]+)/metrics\.json$")


def run_methods(files: dict[str, dict]) -> dict[str, dict]:
    """Method -> its scores ({"acc", "nmi", "ari"} with labels, "balance" and "silhouette"
    always) in one run, from its metrics files."""
    out = {}
    gcc = files.get("results/metrics.json") or {}
    if "final" in gcc:
        for name, scores, _ in leaderboard_rows(gcc, {})[:4]:
            out[name.strip("*")] = scores
    for path, scores in sorted(files.items()):
        match = BASELINE_METRICS.match(path)
        if match and ("acc" in scores or "balance" in scores):
            name = match.group(1)
            out[METHODS[name].title if name in METHODS else name] = scores
    return out


def seed_groups(experiments: list[dict]) -> list[tuple[dict, dict[int, dict[str, dict]]]]:
    """Runs of `dvc exp show --json` grouped by their params without `base.seed`:
    [(params, {seed: {method: scores}})], first seen first. A seed seen twice in a group counts
    once: an experiment's run wins over the workspace's and the commit's, else the first seen.
    `dvc exp run` reproduced an experiment for exactly its params, while a commit's metrics
    files can predate its params (`gccluster preset fashion_mnist` committed without a `dvc
    repro` still holds the digits results, which would otherwise stand in as seed 0)."""
    groups: list[tuple[dict, dict[int, dict[str, dict]]]] = []
    from_experiment: set[tuple[int, int]] = set()  # (group index, seed) filled by an experiment
    for kind, params, files in _runs(experiments, metrics_file=None):
        methods = run_methods(files)
        if not methods:
            continue
        rest = {k: v for k, v in params.items() if k != "base.seed"}
        seed = int(params.get("base.seed", 0))
        index = next((i for i, (known, _) in enumerate(groups) if known == rest), None)
        if index is None:
            groups.append((rest, {}))
            index = len(groups) - 1
        seeds = groups[index][1]
        if seed not in seeds or (kind == "experiment" and (index, seed) not in from_experiment):
            seeds[seed] = methods
            if kind == "experiment":
                from_experiment.add((index, seed))
    return groups


def render_leaderboard(experiments: list[dict]) -> str:
    """min / median / max of ACC, NMI, ARI, balance and silhouette per method over the seeds of each group of
    runs that differ only in `base.seed` (e.g. `dvc exp run --queue -S base.seed=0,1,2`)."""
    groups = seed_groups(experiments)
    if not groups:
        return ("No run with metrics found in `dvc exp show --json`. Run seeds first, e.g.\n\n"
                "    dvc exp run --queue -S base.seed=0,1,2 && dvc exp run --run-all\n")
    # Groups are titled by how their params differ from the commit's (which need not have
    # metrics of its own), else from the first group's.
    commits = [params for kind, params, _ in _runs(experiments, metrics_file=None) if kind == "commit"]
    reference = {k: v for k, v in commits[0].items() if k != "base.seed"} if commits else groups[0][0]
    lines = ["# Leaderboard over seeds", "",
             "Each cell: min / median / max over the seeds of a group of runs whose params differ only in "
             "`base.seed`. No seed paper reports this form; it is the one a reader can reproduce.", ""]
    for params, seeds in groups:
        changed = {k: v for k, v in params.items() if reference.get(k) != v}
        changed.update({f"-{k}": None for k in reference if k not in params})
        title = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()) if not k.startswith("-")) or "committed params"
        lines += [f"## {title}", "", f"Seeds: {', '.join(str(s) for s in sorted(seeds))}", "",
                  "| method | runs | ACC | NMI | ARI | balance | silhouette |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        methods = list(dict.fromkeys(m for runs in seeds.values() for m in runs))
        for method in methods:
            values = [runs[method] for runs in seeds.values() if method in runs]
            cells = []
            for metric in ("acc", "nmi", "ari", "balance", "silhouette"):
                numbers = [float(v[metric]) for v in values if v.get(metric) is not None]
                cells.append(f"{min(numbers):.4f} / {statistics.median(numbers):.4f} / {max(numbers):.4f}"
                             if numbers else "–")
            lines.append(f"| {method} | {len(values)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
