"""An interrupted pretraining resumes from its last epoch and ends with the same weights."""

import numpy as np
import pytest
import torch

from gccluster.config import DataConfig, PretrainConfig
from gccluster.data.prepare import prepare_dataset
from gccluster.runtime import seed_everything
from gccluster.train.pretrain import pretrain_simclr
from gccluster.train.resume import EpochCheckpointer


class Interrupted(Exception):
    pass


class DiesAfter(EpochCheckpointer):
    """Saves like the real one, then dies once `epochs` epochs are saved (a simulated kill)."""

    def __init__(self, *args, epochs: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.die_at = epochs

    def save(self, modules, generator, state):
        super().save(modules, generator, state)
        if state.epoch == self.die_at:
            raise Interrupted


@pytest.fixture(scope="module")
def images():
    return prepare_dataset(DataConfig(), "unused").train.images[:300]


def run(images, cfg, checkpointer):
    torch.set_num_threads(1)
    return pretrain_simclr(images, "digits", cfg, torch.device("cpu"), seed_everything(0), checkpointer)


def test_resume_continues_and_matches_uninterrupted(tmp_path, images):
    cfg = PretrainConfig(epochs=4, batch_size=100, width=4)
    reference = run(images, cfg, None)

    dying = DiesAfter("pretrain", {"cfg": 1}, root=tmp_path, epochs=2)
    with pytest.raises(Interrupted):
        run(images, cfg, dying)
    assert (tmp_path / "pretrain" / "state.pt").is_file()

    resumed_from = []

    class Watching(EpochCheckpointer):
        def restore(self, modules, generator):
            state = super().restore(modules, generator)
            resumed_from.append(state.epoch)
            return state

    resumed = run(images, cfg, Watching("pretrain", {"cfg": 1}, root=tmp_path))
    assert resumed_from == [2]
    assert resumed.epoch_loss == pytest.approx(reference.epoch_loss, rel=1e-6)
    for key, value in reference.backbone.state_dict().items():
        torch.testing.assert_close(resumed.backbone.state_dict()[key], value, rtol=1e-6, atol=1e-7)


def test_state_saved_under_other_params_is_discarded(tmp_path, images):
    cfg = PretrainConfig(epochs=2, batch_size=100, width=4)
    with pytest.raises(Interrupted):
        run(images, cfg, DiesAfter("pretrain", {"cfg": 1}, root=tmp_path, epochs=1))
    other = EpochCheckpointer("pretrain", {"cfg": 2}, root=tmp_path)
    state = other.restore({}, seed_everything(0))
    assert state.epoch == 0
    assert not (tmp_path / "pretrain").exists()
    assert np.isfinite(run(images, cfg, other).epoch_loss).all()
