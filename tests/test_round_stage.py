"""The round stage on a tiny project: resume state never outlives its inputs (issue "stale
resume state"), and the held-out draw comes from the round's output G."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY_OVERRIDES, invoke, run_stages_in_process
from gccluster.checkpoints import load_checkpoint, save_checkpoint
from gccluster.config import load_params
from gccluster.diffusion import sample_images
from gccluster.evaluation import generated_agreement
from gccluster.models.loading import load_clustering_branch, load_unet
from gccluster.runtime import derive_seed
from gccluster.scratch_project import copy_pipeline, deep_update
from gccluster.train.resume import EpochCheckpointer

OVERRIDES = deep_update(copy.deepcopy(TINY_OVERRIDES), {
    "gcc": {"rounds": {"r1": {"init": "pseudolabel"}}, "final_round": "r1", "cluster_epochs": 2},
})


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def stage_one(tmp_path_factory):
    """A tiny project with Stage I done (data, pretrain, pseudolabel, diffusion)."""
    project = copy_pipeline(ROOT, tmp_path_factory.mktemp("round") / "project", OVERRIDES)
    run_stages_in_process(project, ("data", "pretrain", "pseudolabel", "diffusion"))
    return project


@pytest.fixture
def chdir_to(monkeypatch):
    return monkeypatch.chdir


def fork(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def change_upstream_head(project: Path) -> None:
    """A different Stage I cluster head (its last layer rescaled), written with the same schema."""
    path = project / "results/pseudolabel/cluster_head.pt"
    payload = load_checkpoint(path, "cluster_head")
    state = payload["state"]
    last = sorted(key for key in state if key.endswith("weight"))[-1]
    state[last] = state[last] * 3.0
    head = torch.nn.Module()
    head.state_dict = lambda: state  # save_checkpoint reads only state_dict()
    save_checkpoint(path, "cluster_head", head, payload["arch"], payload["config"])


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state"]


def test_interrupted_round_restarts_when_an_upstream_checkpoint_changed(stage_one, tmp_path, chdir_to, monkeypatch):
    interrupted = fork(stage_one, tmp_path / "interrupted")
    fresh = fork(stage_one, tmp_path / "fresh")

    original_save = EpochCheckpointer.save

    def save_then_die(self, modules, generator, state):
        original_save(self, modules, generator, state)
        if self.folder.name == "r1-cluster" and state.epoch == 1:
            raise Interrupted

    chdir_to(interrupted)
    with monkeypatch.context() as patch:
        patch.setattr(EpochCheckpointer, "save", save_then_die)
        with pytest.raises(Interrupted):
            invoke("round", "r1")
    assert (interrupted / ".scratch/r1-cluster/state.pt").is_file()

    for project in (interrupted, fresh):
        change_upstream_head(project)

    rerun = invoke("round", "r1")
    assert rerun.exit_code == 0, rerun.output
    assert "resuming" not in rerun.output
    assert ("r1-cluster: discarding resume state .scratch/r1-cluster/state.pt (inputs changed: "
            "results/pseudolabel/cluster_head.pt); starting from epoch 1") in rerun.output
    assert not (interrupted / ".scratch").exists()

    chdir_to(fresh)
    assert invoke("round", "r1").exit_code == 0
    for name in ("backbone.pt", "cluster_head.pt", "unet.pt"):
        expected, got = tensors(fresh / "results/r1" / name), tensors(interrupted / "results/r1" / name)
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key], got[key]), f"{name}: {key} differs from the uninterrupted run"
    for name in ("bank.npz", "samples.npz", "cluster_loss.csv"):
        assert (fresh / "results/r1" / name).read_bytes() == (interrupted / "results/r1" / name).read_bytes()


def test_heldout_samples_come_from_the_output_generator_and_are_scored_by_evaluate(stage_one, tmp_path, chdir_to):
    project = fork(stage_one, tmp_path / "project")
    chdir_to(project)
    for stage, args in (("round", ("r1",)), ("evaluate", ())):
        result = invoke(stage, *args)
        assert result.exit_code == 0, result.output
    params = load_params("params.yaml")
    samples, bank = (np.load(project / "results/r1" / name) for name in ("samples.npz", "bank.npz"))

    # The held-out set is a fresh draw from the round's fine-tuned G, with its own seed.
    output_unet = load_unet(project / "results/r1/unet.pt")
    generator = torch.Generator().manual_seed(derive_seed(params.base.seed, "r1", "heldout"))
    redrawn = sample_images(output_unet, params.diffusion, samples["labels"], torch.device("cpu"), generator)
    np.testing.assert_array_equal(redrawn, samples["images"])
    input_unet = load_unet(project / "results/diffusion/unet.pt")
    generator = torch.Generator().manual_seed(derive_seed(params.base.seed, "r1", "heldout"))
    from_input = sample_images(input_unet, params.diffusion, samples["labels"], torch.device("cpu"), generator)
    assert not np.array_equal(from_input, samples["images"])
    assert len(samples["labels"]) == len(bank["labels"]) == params.gcc.bank_size
    assert not np.array_equal(samples["images"], bank["images"])

    backbone, head = load_clustering_branch(project / "results/r1/backbone.pt", project / "results/r1/cluster_head.pt")
    scores = json.loads((project / "results/metrics.json").read_text())["rounds"]["r1"]
    cpu = torch.device("cpu")
    assert scores["heldout_agreement"] == generated_agreement(backbone, head, samples["images"], samples["labels"], cpu, 512,
                                                                precision=params.base.precision)
    assert scores["train_bank_fit"] == generated_agreement(backbone, head, bank["images"], bank["labels"], cpu, 512,
                                                             precision=params.base.precision)


def test_fresh_bank_every_epoch_as_large_as_the_train_split(stage_one, tmp_path, chdir_to):
    from conftest import set_params
    from gccluster.data.prepare import load_prepared

    project = fork(stage_one, tmp_path / "project")
    set_params(project, {"gcc": {"bank_size": None, "bank_refresh": "epoch"}})
    chdir_to(project)
    result = invoke("round", "r1")
    assert result.exit_code == 0, result.output
    n_train = len(load_prepared(project / "data/prepared").train.images)
    bank, samples = (np.load(project / "results/r1" / name) for name in ("bank.npz", "samples.npz"))
    assert len(bank["labels"]) == len(samples["labels"]) == n_train
    assert len((project / "results/r1/cluster_loss.csv").read_text().splitlines()) == 1 + OVERRIDES["gcc"]["cluster_epochs"]


def test_kmeans_in_the_projection_space_is_used_by_pseudolabel_and_evaluate(stage_one, tmp_path, chdir_to):
    from conftest import set_params
    from gccluster.data.prepare import load_prepared
    from gccluster.features import extract_features, kmeans_space_encoder
    from gccluster.metrics import clustering_scores
    from gccluster.models.loading import load_backbone, load_projector
    from gccluster.train.pseudolabel import assign_to_centers

    project = fork(stage_one, tmp_path / "project")
    set_params(project, {"pseudolabel": {"kmeans_space": "projection"}})
    chdir_to(project)
    for stage, args in (("pseudolabel", ()), ("round", ("r1",)), ("evaluate", ())):
        result = invoke(stage, *args)
        assert result.exit_code == 0, result.output
    kmeans = np.load(project / "results/pseudolabel/kmeans.npz")
    assert str(kmeans["space"]) == "projection"
    backbone = load_backbone(project / "results/pretrain/backbone.pt")
    projector = load_projector(project / "results/pretrain/projector.pt", backbone.feature_dim)
    assert kmeans["centers"].shape == (TINY_OVERRIDES["pseudolabel"].get("n_clusters", 10), projector.mlp[-1].out_features)
    test = load_prepared(project / "data/prepared").test
    features = extract_features(kmeans_space_encoder(backbone, projector, "projection"), test.images, torch.device("cpu"),
                                precision="auto")  # the params' default, as the stages ran
    expected = clustering_scores(test.labels, assign_to_centers(features, kmeans["centers"]))
    found = json.loads((project / "results/metrics.json").read_text())["pretext_kmeans"]
    assert {k: found[k] for k in expected} == expected
