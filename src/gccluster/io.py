"""Atomic writes: every output is written to a temporary name beside it, then renamed.

An interrupted stage therefore leaves either the previous file or none, never a
half-written checkpoint that DVC would cache.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder; rename it onto `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces the folder `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # a handle, so numpy does not append ".npz" to tmp
            np.savez(handle, **arrays)


def read_npz(path: str | os.PathLike, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """The arrays `keys` of an .npz file; a missing, corrupt or incomplete file is a
    `UserError` naming the file and `what` it should hold."""
    from gccluster.errors import UserError

    try:
        with np.load(path) as arrays:
            return {key: arrays[key] for key in keys}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{path}: unreadable {what} ({err})") from None


def write_csv(path: str | os.PathLike, columns: dict[str, list]) -> None:
    """Write equal-length columns as a CSV that `dvc plots` reads."""
    names = list(columns)
    lengths = {len(columns[name]) for name in names}
    if len(lengths) > 1:
        raise ValueError(f"columns of unequal length: { {n: len(columns[n]) for n in names} }")
    rows = [",".join(names)]
    for values in zip(*(columns[name] for name in names)):
        rows.append(",".join(_format_cell(v) for v in values))
    write_text(path, "\n".join(rows) + "\n")


def write_epoch_curves(path: str | os.PathLike, **curves: list[float]) -> None:
    """Per-epoch values (a loss and its parts) as a CSV with an `epoch` column from 1."""
    length = max((len(values) for values in curves.values()), default=0)
    write_csv(path, {"epoch": list(range(1, length + 1)), **curves})


def _format_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
