"""Resumable epoch state for long stages, kept in an undeclared scratch folder.

After every completed epoch the stage saves model, optimiser, scheduler, RNG states and
the loss history to `.scratch/<stage>/state.pt` (atomically). A rerun of an interrupted
stage with the same params continues from there; a state saved under other params is
discarded. The folder is removed when the stage completes, so DVC never sees it.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gccluster import paths
from gccluster.io import atomic_path


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


@dataclass
class ResumeState:
    epoch: int = 0  # epochs completed
    history: dict[str, list[float]] = field(default_factory=dict)


class EpochCheckpointer:
    """Save and restore a stage's epoch state; `modules` maps names to objects with state_dict()."""

    def __init__(self, stage: str, config: Any, root: Path = paths.SCRATCH):
        self.folder = Path(root) / stage
        self.path = self.folder / "state.pt"
        self.key = fingerprint(config)

    def restore(self, modules: dict[str, Any], generator: torch.Generator) -> ResumeState:
        if not self.path.is_file():
            return ResumeState()
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception:  # a state we cannot read is only lost time: start over
            self.clear()
            return ResumeState()
        if saved.get("key") != self.key:
            self.clear()
            return ResumeState()
        for name, obj in modules.items():
            obj.load_state_dict(saved["modules"][name])
        restore_rng_state(saved["rng"], generator)
        print(f"{self.folder.name}: resuming after epoch {saved['epoch']} from {self.path}", flush=True)
        return ResumeState(epoch=saved["epoch"], history=saved["history"])

    def save(self, modules: dict[str, Any], generator: torch.Generator, state: ResumeState) -> None:
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
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()  # only when no other stage keeps state there
        except OSError:
            pass
