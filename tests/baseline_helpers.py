"""What the baseline tests share: random images, a request as the stage builds it, an
interrupted-then-resumed training run, and the checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gccluster.baselines.common import TrainRequest, apply_model
from gccluster.checkpoints import save_checkpoint
from gccluster.errors import UserError
from gccluster.runtime import seed_everything
from gccluster.train.resume import EpochCheckpointer


def images(count=64, size=16, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, size, size, channels), dtype=np.uint8)


def request(config, pictures, checkpointer=None, seed=0):
    """As the stage builds it: every RNG seeded (model init and kornia's views use torch's)."""
    return TrainRequest(images=pictures, dataset="digits", n_clusters=4, config=config,
                        device=torch.device("cpu"), precision="fp32", generator=seed_everything(seed),
                        checkpointer=checkpointer)


def resumed_after_interruption(method, make_request, cfg, root, monkeypatch, stop_at_save: int):
    """Train `cfg` with resume state saved at every epoch end, stop it right after save
    number `stop_at_save`, then rerun from the state with another seed (the saved RNG state
    must win). Returns the resumed result."""
    monkeypatch.setattr(method, "SAVE_EVERY_S", 0.0)
    checkpointer = EpochCheckpointer(method.CHECKPOINT_KIND, {"test": 1}, root=root)
    original = checkpointer.save
    saves = {"count": 0}

    class Interrupted(Exception):
        pass

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        saves["count"] += 1
        if saves["count"] == stop_at_save:
            raise Interrupted

    monkeypatch.setattr(checkpointer, "save", save_then_stop)
    with pytest.raises(Interrupted):
        method.train(make_request(cfg, checkpointer=checkpointer))
    monkeypatch.setattr(checkpointer, "save", original)
    return method.train(make_request(cfg, checkpointer=checkpointer, seed=123))


def assert_same_model(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def assert_checkpoint_round_trip(method, model, arch, pictures, tmp_path) -> None:
    """`method.load` rebuilds the saved model (same cluster ids) and refuses a corrupt file."""
    path = tmp_path / "model.pt"
    save_checkpoint(path, method.CHECKPOINT_KIND, model, arch)
    before, _ = apply_model(model, pictures, torch.device("cpu"))
    after, _ = apply_model(method.load(path), pictures, torch.device("cpu"))
    assert np.array_equal(before, after)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt or unreadable"):
        method.load(path)
