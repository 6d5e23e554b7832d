"""The baseline harness (registry, params, stage) and DCCS's training loop."""

import pytest
import torch

from baseline_helpers import assert_checkpoint_round_trip, assert_same_model, images, resumed_after_interruption
from baseline_helpers import request as baseline_request
from gccluster.baselines.common import apply_model
from gccluster.baselines.dccs import method as dccs
from gccluster.baselines.dccs.params import DCCSConfig
from gccluster.baselines.params import METHOD_NAMES
from gccluster.baselines.registry import METHODS, method_module
from gccluster.config import Params, validate_params
from gccluster.errors import NonFiniteLossError, UserError

TINY = {"batch_size": 16, "max_encoder_steps": 6, "check_every": 100}


def request(config, pictures=None, checkpointer=None, seed=0):
    return baseline_request(config, images() if pictures is None else pictures, checkpointer, seed)


def params_with(**baselines):
    raw = Params().model_dump(mode="json")
    raw["baselines"].update(baselines)
    return raw


def test_registry_and_params_name_the_same_methods():
    assert tuple(METHODS) == METHOD_NAMES
    for name in METHOD_NAMES:
        module = method_module(name)
        assert callable(module.train) and callable(module.load) and module.CHECKPOINT_KIND
    with pytest.raises(UserError, match="unknown baseline 'nope'"):
        method_module("nope")


def test_run_lists_registered_methods_once():
    with pytest.raises(UserError, match="baselines.run"):
        validate_params(params_with(run=["dccs", "dccs"]))
    with pytest.raises(UserError, match="baselines.run"):
        validate_params(params_with(run=["kmeans"]))
    assert validate_params(params_with(run=[])).baselines.run == ()


def test_dccs_refuses_image_sizes_it_has_no_encoder_for():
    raw = params_with()
    raw["data"].update(dataset="stl10", image_size=None)
    raw["pretrain"]["augment"]["policy"] = "simclr"
    with pytest.raises(UserError, match="baselines.dccs: images of 96 px"):
        validate_params(raw)
    raw["baselines"]["run"] = []
    validate_params(raw)  # without DCCS in the run, STL-10's 96 px is fine


def test_dccs_resolves_the_papers_per_dataset_choices():
    cfg = DCCSConfig()
    assert cfg.resolved_beta_aug(1) == 2.0 and cfg.resolved_beta_aug(3) == 4.0
    assert DCCSConfig(beta_aug=0.5).resolved_beta_aug(1) == 0.5
    assert not cfg.resolved_flip("digits") and cfg.resolved_flip("fashion_mnist")
    assert not dccs.view_spec(cfg, "digits").flip and dccs.view_spec(cfg, "fashion_mnist").flip


def test_training_alternates_four_critic_steps_per_encoder_step_and_stops_at_the_budget():
    result = dccs.train(request(DCCSConfig(**TINY)))
    summary = result.summary
    assert summary["encoder_steps"] == 6 and summary["critic_steps"] == 4 * 6
    assert "budget of 6 encoder steps" in summary["stop_reason"]
    lengths = {len(values) for values in result.curves.values()}
    assert lengths == {summary["epochs"]} and set(result.curves) == set(dccs.CURVES)
    assert result.curves["encoder_steps"][-1] == 6
    assert all(0.0 <= b <= 1.0 for b in result.curves["balance"])
    ids, features = apply_model(result.model, images(count=10), torch.device("cpu"))
    assert ids.shape == (10,) and set(ids.tolist()) <= set(range(4)) and features.shape == (10, 50 + 4)


def test_training_stops_when_the_wasserstein_estimate_stops_falling():
    plateau = dccs.WassersteinPlateau(patience=2, tolerance=0.1)
    assert [plateau.update(v) for v in (1.0, 0.8, 0.75, 0.79, 0.70)] == [False, False, False, True, False]
    assert plateau.best == pytest.approx(0.70) and plateau.stale == 0
    # In training: a tolerance no check can beat stops after 1 + patience checks.
    result = dccs.train(request(DCCSConfig(batch_size=16, max_encoder_steps=50, check_every=2, stop_patience=2,
                                           stop_tolerance=0.99)))
    assert result.summary["encoder_steps"] == 6 and "flat" in result.summary["stop_reason"]
    assert len(result.summary["wasserstein_checks"]) == 3


def test_colour_images_are_clustered_in_grey_with_shuffled_channels_for_the_view():
    result = dccs.train(request(DCCSConfig(**TINY), pictures=images(size=16, channels=3)))
    assert result.model.grayscale and result.model.encoder.conv[0].in_channels == 1
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    shuffled = dccs.shuffle_channels(x)
    for i in range(2):
        assert sorted(shuffled[i].flatten().tolist()) == sorted(x[i].flatten().tolist())


def test_an_interrupted_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    cfg = DCCSConfig(batch_size=16, max_encoder_steps=8, check_every=3)
    straight = dccs.train(request(cfg))
    resumed = resumed_after_interruption(dccs, request, cfg, tmp_path, monkeypatch, stop_at_save=2)
    assert_same_model(straight.model, resumed.model)
    assert straight.curves == resumed.curves
    assert straight.summary["wasserstein_checks"] == resumed.summary["wasserstein_checks"]


def test_a_non_finite_critic_loss_stops_training_naming_the_stage(monkeypatch):
    def broken(critic, prior, encoded, gp_lambda, generator=None):
        value = critic(prior).mean() * float("nan")
        return value, value.detach()

    monkeypatch.setattr(dccs, "critic_loss", broken)
    with pytest.raises(NonFiniteLossError, match="baseline@dccs"):
        dccs.train(request(DCCSConfig(**TINY)))


def test_checkpoint_round_trip_and_corrupt_file(tmp_path):
    result = dccs.train(request(DCCSConfig(**TINY)))
    assert_checkpoint_round_trip(dccs, result.model, result.arch, images(count=20, seed=3), tmp_path)


def test_stage_refuses_a_method_outside_the_run(project):
    import os

    from conftest import invoke, set_params

    set_params(project, {"baselines": {"run": []}})
    old = os.getcwd()
    os.chdir(project)
    try:
        result = invoke("baseline", "dccs")
    finally:
        os.chdir(old)
    assert result.exit_code == 2 and "does not list 'dccs'" in result.output
    assert not (project / "results" / "baselines" / "dccs" / "metrics.json").exists()
