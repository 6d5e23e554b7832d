"""Resumable epoch state for long stages, kept in an undeclared scratch folder.

After every completed epoch the stage saves model, optimiser, scheduler, RNG states and
the loss history to `.scratch/<stage>/state.pt` (atomically), with a fingerprint of all
that the stage's result depends on: its params, the content of its input files (data,
upstream checkpoints) and its code (the import closure of the stage script,
`gccluster.codedeps`). A rerun of an interrupted stage continues from there only when the
fingerprint is the same; otherwise the state is discarded with one line saying what
changed, and the stage starts from its first epoch. The folder is removed when the stage
completes, so DVC never sees it.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gccluster import paths
from gccluster.codedeps import code_digest, import_closure
from gccluster.distributed import world
from gccluster.io import atomic_path


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def content_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and bytes, sorted);
    "missing" for a path that does not exist."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        files = [(path.name, path)]
    elif path.is_dir():
        files = [(p.relative_to(path).as_posix(), p) for p in sorted(path.rglob("*")) if p.is_file()]
    else:
        return "missing"
    for name, file in files:
        digest.update(name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def rng_state(generator: torch.Generator) -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict, generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _say(message: str) -> None:
    """A line on stdout, from the first torchrun worker only (the ranks restore alike)."""
    if world().is_main:
        print(message, flush=True)


@dataclass
class ResumeState:
    epoch: int = 0  # epochs completed
    history: dict[str, list[float]] = field(default_factory=dict)


class EpochCheckpointer:
    """Save and restore a stage's epoch state; `modules` maps names to objects with state_dict().

    `config`: the params the stage read; `inputs`: the files and folders it reads (prepared
    data, upstream checkpoints); `code`: the stage script, whose import closure is hashed.
    State saved under another fingerprint is never restored.
    """

    def __init__(self, stage: str, config: Any, inputs: Sequence[Path] = (), code: Path | None = None,
                 root: Path = paths.SCRATCH):
        self.folder = Path(root) / stage
        self.path = self.folder / "state.pt"
        self.key = {
            "params": fingerprint(config),
            "inputs": {Path(p).as_posix(): content_digest(p) for p in inputs},
            "code": code_digest(import_closure(code)) if code is not None else "",
        }

    def _mismatch(self, saved_key: Any) -> str | None:
        """What differs between the saved fingerprint and this run's, in words (None: same)."""
        if not isinstance(saved_key, dict) or set(saved_key) != set(self.key):
            return "it was saved by an older version of this code"
        reasons = []
        if saved_key["params"] != self.key["params"]:
            reasons.append("params changed")
        changed = sorted(name for name in set(saved_key["inputs"]) | set(self.key["inputs"])
                         if saved_key["inputs"].get(name) != self.key["inputs"].get(name))
        if changed:
            reasons.append(f"inputs changed: {', '.join(changed)}")
        if saved_key["code"] != self.key["code"]:
            reasons.append("code changed")
        return "; ".join(reasons) or None

    def restore(self, modules: dict[str, Any], generator: torch.Generator) -> ResumeState:
        if not self.path.is_file():
            return ResumeState()
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception:  # a state we cannot read is only lost time: start over
            _say(f"{self.folder.name}: discarding unreadable resume state {self.path}; starting from epoch 1")
            self.clear()
            return ResumeState()
        reason = self._mismatch(saved.get("key"))
        if reason is not None:
            _say(f"{self.folder.name}: discarding resume state {self.path} ({reason}); starting from epoch 1")
            self.clear()
            return ResumeState()
        for name, obj in modules.items():
            obj.load_state_dict(saved["modules"][name])
        restore_rng_state(saved["rng"], generator)
        _say(f"{self.folder.name}: resuming after epoch {saved['epoch']} from {self.path}")
        return ResumeState(epoch=saved["epoch"], history=saved["history"])

    def save(self, modules: dict[str, Any], generator: torch.Generator, state: ResumeState) -> None:
        """Write the state (on the first torchrun worker only: the ranks hold the same
        models, optimisers and shared generator; their own random streams are rederived
        from it every epoch, `distributed.rank_generator`)."""
        if not world().is_main:
            return
        payload = {
            "key": self.key,
            "epoch": state.epoch,
            "history": state.history,
            "modules": {name: obj.state_dict() for name, obj in modules.items()},
            "rng": rng_state(generator),
        }
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)

    def clear(self) -> None:
        if not world().is_main:
            return
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()  # only when no other stage keeps state there
        except OSError:
            pass
