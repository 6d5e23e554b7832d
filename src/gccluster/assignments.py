"""`results/assignments/<method>.csv`: the cluster of every image, for a user to act on.

One row per image of the prepared data set: `file` (an image folder's path relative to the
folder, or `<split>/<index>` for a built-in dataset, `all/<index>` under train+test), `split` (train, test, or train+test
when the protocol fits and scores on every image), `cluster` (0..K-1) and `confidence`
(the method's probability of that cluster: the largest softmax output)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gccluster.data.prepare import PreparedDataset, image_ids
from gccluster.io import atomic_path

COLUMNS = ("file", "split", "cluster", "confidence")

# images (uint8 N, H, W, C) -> (cluster ids (N,), confidence (N,))
Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def assignment_rows(data: PreparedDataset, predict: Predictor) -> list[tuple[str, str, int, float]]:
    """Rows for every image once: both splits, or the one shared set under `train+test`."""
    if data.meta["protocol"] == "train+test":
        splits = [("train+test", data.train)]
    else:
        splits = [("train", data.train), ("test", data.test)]
    rows = []
    for name, split in splits:
        clusters, confidence = predict(split.images)
        ids = image_ids("all" if name == "train+test" else name, split)
        rows += [(image, name, int(k), round(float(p), 4)) for image, k, p in zip(ids, clusters, confidence)]
    return rows


def write_assignments(path: str | Path, rows: list[tuple[str, str, int, float]]) -> None:
    """A CSV with a header; quoted by the csv module, so any file name survives."""
    with atomic_path(path) as tmp:
        # surrogateescape: a file name that is not UTF-8 is written back as its own bytes.
        with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(rows)


def read_assignments(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return list(csv.DictReader(handle))
