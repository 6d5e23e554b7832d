"""An interrupted pretraining resumes from its last epoch and ends with the same weights."""

import numpy as np
import pytest
import torch

from gccluster.config import DataConfig, PretrainConfig
from gccluster.data.prepare import prepare_dataset
from gccluster.runtime import seed_everything
from gccluster.train.pretrain import pretrain_simclr
from gccluster.train.resume import EpochCheckpointer, ResumeState


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


def test_state_is_discarded_when_an_input_file_or_the_code_changes(tmp_path, capsys):
    """The fingerprint covers params, input files and the stage's code; each mismatch is named."""
    data = tmp_path / "data.npz"
    data.write_bytes(b"first")
    script = tmp_path / "stage.py"
    script.write_text("import gccluster.paths\n")
    module = torch.nn.Linear(2, 2)

    def checkpointer(config=None):
        return EpochCheckpointer("stage", config or {"cfg": 1}, inputs=[data], code=script, root=tmp_path / "scratch")

    def save_one_epoch():
        checkpointer().save({"m": module}, seed_everything(0), ResumeState(epoch=1, history={"loss": [1.0]}))

    save_one_epoch()
    assert checkpointer().restore({"m": module}, seed_everything(0)).epoch == 1  # same everything: resume

    for change, reason in (
        (lambda: data.write_bytes(b"second"), f"inputs changed: {data.as_posix()}"),
        (lambda: script.write_text("import gccluster.paths  # edited\n"), "code changed"),
        (lambda: None, "params changed"),
    ):
        save_one_epoch()
        change()
        capsys.readouterr()
        state = checkpointer({"cfg": 2} if reason == "params changed" else None).restore({"m": module}, seed_everything(0))
        assert state.epoch == 0
        assert f"({reason}); starting from epoch 1" in capsys.readouterr().out
        assert not (tmp_path / "scratch" / "stage").exists()


def test_code_fingerprint_follows_imported_modules(tmp_path):
    """Editing a module the stage imports (not the stage file itself) changes the fingerprint."""
    from gccluster.codedeps import code_digest, import_closure

    source = tmp_path / "src"
    package = source / "gccluster"
    (package / "train").mkdir(parents=True)
    for init in (package / "__init__.py", package / "train" / "__init__.py"):
        init.write_text("")
    (package / "train" / "loop.py").write_text("from gccluster import helpers\n")
    (package / "helpers.py").write_text("X = 1\n")
    (package / "unused.py").write_text("Y = 1\n")
    stage = tmp_path / "stage.py"
    stage.write_text("def main():\n    from gccluster.train.loop import run\n")
    closure = import_closure(stage, source)
    assert [p.relative_to(tmp_path).as_posix() for p in closure] == [
        "src/gccluster/__init__.py", "src/gccluster/helpers.py", "src/gccluster/train/__init__.py",
        "src/gccluster/train/loop.py", "stage.py",
    ]
    # an import that `skip` names is cut (stagedeps cuts the params aggregator's, one kind)
    cut = import_closure(stage, source, skip=lambda file, name: file.name == "loop.py" and name.endswith("helpers"))
    assert "src/gccluster/helpers.py" not in [p.relative_to(tmp_path).as_posix() for p in cut]
    assert len(cut) == len(closure) - 1
    before = code_digest(closure, source)
    (package / "unused.py").write_text("Y = 2\n")
    assert code_digest(import_closure(stage, source), source) == before
    (package / "helpers.py").write_text("X = 2\n")
    assert code_digest(import_closure(stage, source), source) != before
