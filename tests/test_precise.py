"""The precise-feature method (Gan et al. 2021): Eq. 5-8 against independent computations,
the networks of Fig. 2 per size, Algorithm 1's loop (who trains on what), resume and errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from baseline_helpers import assert_checkpoint_round_trip, assert_same_model, images, resumed_after_interruption
from baseline_helpers import request as baseline_request
from pydantic import ValidationError
from torch import nn

from gccluster.baselines.common import apply_model
from gccluster.baselines.precise import method as precise
from gccluster.baselines.precise.losses import classifier_loss, critic_loss, eta_schedule, generator_loss
from gccluster.baselines.precise.model import (
    PreciseClassifier,
    PreciseClusterer,
    PreciseCritic,
    PreciseGenerator,
    tflib_init,
)
from gccluster.baselines.precise.params import PreciseConfig
from gccluster.errors import NonFiniteLossError, UserError

# Every code path: several rows, τ of 2 (η climbs), the code's doubling at half the run.
TINY = {"width": 2, "noise_dim": 8, "batch_size": 8, "iterations": 4, "tau": 2, "n_critic": 2, "n_class": 2,
        "log_every": 2, "probe_images": 20, "grid_columns": 3}


def request(config, pictures=None, checkpointer=None, seed=0):
    return baseline_request(config, images(count=40) if pictures is None else pictures, checkpointer, seed)


class LinearCritic(nn.Module):
    """D(x) = w·x + b, whose input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = nn.Parameter(w.clone()), b

    def forward(self, x):
        return x.flatten(1) @ self.w + self.b


def test_critic_loss_of_a_linear_critic_is_eq_5_with_the_analytic_gradient_norm():
    torch.manual_seed(0)
    w = torch.randn(12, dtype=torch.float64) * 0.7
    critic = LinearCritic(w, 0.3)
    real, fake = torch.rand(5, 3, 2, 2, dtype=torch.float64), torch.rand(5, 3, 2, 2, dtype=torch.float64)
    loss, estimate, penalty = critic_loss(critic, real, fake, gp_lambda=100.0)
    real_scores = real.flatten(1) @ w + 0.3
    fake_scores = fake.flatten(1) @ w + 0.3
    by_hand_penalty = (w.norm() - 1) ** 2  # ‖∇_x̂ D‖ = ‖w‖ at every interpolate
    assert float(penalty) == pytest.approx(float(by_hand_penalty), rel=1e-6)  # float32 sums
    assert float(estimate) == pytest.approx(float(real_scores.mean() - fake_scores.mean()), rel=1e-6)
    expected = fake_scores.mean() - real_scores.mean() + 100.0 * by_hand_penalty
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-6)
    loss.backward()  # the penalty's gradient reaches w: d/dw = E_g x − E_r x + 200 (‖w‖ − 1) w / ‖w‖
    grad = fake.flatten(1).mean(0) - real.flatten(1).mean(0) + 200.0 * (w.norm() - 1) * w / w.norm()
    assert torch.allclose(critic.w.grad, grad, rtol=1e-6)


def test_the_penalty_is_taken_on_one_interpolate_per_pair():
    """A critic that records what it sees: real, fake, then x̂ = ε x + (1 − ε) x̃ with one
    ε in [0, 1] per pair (Algorithm 1, line 7)."""
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return (x**2).flatten(1).sum(1)  # not linear: the penalty depends on where x̂ lies

    real, fake = torch.rand(6, 1, 3, 3, dtype=torch.float64), torch.rand(6, 1, 3, 3, dtype=torch.float64)
    critic_loss(critic, real, fake, gp_lambda=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen[0], real) and torch.equal(seen[1], fake)
    epsilon = ((seen[2] - fake) / (real - fake)).flatten(1)
    assert torch.allclose(epsilon, epsilon[:, :1].expand_as(epsilon), atol=1e-9)
    assert float(epsilon.min()) >= 0.0 and float(epsilon.max()) <= 1.0 and epsilon[:, 0].std() > 0


def test_critic_loss_trains_the_critic_only():
    fake = torch.rand(4, 1, 2, 2, requires_grad=True)
    critic = LinearCritic(torch.ones(4), 0.0)
    loss, _, _ = critic_loss(critic, torch.rand(4, 1, 2, 2), fake * 1.0, gp_lambda=10.0)
    loss.backward()
    assert fake.grad is None and critic.w.grad is not None


def test_classifier_loss_is_eq_6_by_a_loop():
    torch.manual_seed(1)
    logits, labels = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 3, 1, 1, 2, 0])
    by_loop = 0.0
    for i in range(6):
        q = [math.exp(v) for v in logits[i].tolist()]
        by_loop -= math.log(q[labels[i]] / sum(q))
    assert float(classifier_loss(logits, labels)) == pytest.approx(by_loop / 6, rel=1e-6)  # in float32


def test_generator_loss_is_eq_7():
    scores = torch.tensor([0.5, -1.0, 2.0])
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 1, 0])
    loss, reality, entropy = generator_loss(scores, logits, labels, eta=12.0)
    ce = -(math.log(math.e**2 / (math.e**2 + 1)) + math.log(math.e / (1 + math.e)) + math.log(0.5)) / 3
    assert float(reality) == pytest.approx(-0.5)
    assert float(entropy) == pytest.approx(ce)
    assert float(loss) == pytest.approx(-0.5 + 12.0 * ce)


@pytest.mark.parametrize("t, tau, expected", [(0, 30, 10.0), (29, 30, 10.0), (30, 30, 12.0), (59, 30, 12.0),
                                              (90, 30, 10 * 1.2**3), (899_999, 30_000, 10 * 1.2**29)])
def test_eta_is_the_codes_staircase_not_a_compounding_product(t, tau, expected):
    assert eta_schedule(t, 10.0, 1.2, tau) == pytest.approx(expected, rel=1e-12)


def test_params_resolve_tau_and_the_codes_doubling():
    for n, steps in ((600, 29), (900_000, 29), (10_000, 29), (601, 28), (31, 15)):
        tau = PreciseConfig(iterations=n).resolved_tau()
        assert tau == -(-n // 30) and (n - 1) // tau == steps  # at most the paper's 29 steps of γ
    assert PreciseConfig(iterations=900_000).resolved_tau() == 30_000  # the paper's τ
    paper = PreciseConfig(iterations=30)
    assert {paper.steps_at(t) for t in range(30)} == {(5, 4)}
    code = PreciseConfig(iterations=30, n_class=2, double_at=1 / 3)
    assert [code.steps_at(t) for t in (0, 9, 10, 29)] == [(5, 2), (5, 2), (10, 4), (10, 4)]
    code = PreciseConfig(iterations=900_000, n_class=2, double_at=0.333333)
    assert code.steps_at(299_999) == (5, 2) and code.steps_at(300_000) == (10, 4)  # the code's ITERS / 3


def test_params_refuse_sizes_without_a_layout_and_a_budget_too_short_for_tau():
    PreciseConfig().check_data(16, 1, "digits")
    with pytest.raises(ValueError, match="baselines.precise: images of 96 px have no architecture"):
        PreciseConfig().check_data(96, 3, "stl10")
    with pytest.raises(ValidationError, match="at least 30 generator iterations"):
        PreciseConfig(iterations=10)
    PreciseConfig(iterations=10, tau=5)


def test_the_generators_sigmoid_keeps_its_gradient_under_bf16():
    """Under CPU bf16 autocast a logit of 7 gives sigmoid 1 - 9e-4 and gradient 9e-4 in float32;
    in bf16 it would be exactly 1.0 with a gradient of exactly 0."""
    g = PreciseGenerator(16, 1, 2, width=4, noise_dim=8)
    with torch.no_grad():
        g.deconv3.weight.zero_()
        g.deconv3.bias.fill_(7.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = g(torch.tensor([0, 1]), torch.randn(2, 8))
    assert x.dtype == torch.float32 and float(x.detach().max()) < 1.0
    x.sum().backward()
    expected = torch.sigmoid(torch.tensor(7.0)) * (1 - torch.sigmoid(torch.tensor(7.0))) * x[0].numel() * 2
    # (the convolution's own backward still runs in bf16: 0.2 % off)
    torch.testing.assert_close(g.deconv3.bias.grad.sum(), expected, rtol=1e-2, atol=0)


@pytest.mark.parametrize("size", [16, 28, 32])
def test_every_layout_maps_4x4_to_the_image_and_back(size):
    g = PreciseGenerator(size, 3, 10, width=4, noise_dim=8)
    x = g(torch.tensor([0, 9]), torch.randn(2, 8))
    assert x.shape == (2, 3, size, size) and 0.0 <= float(x.detach().min()) and float(x.detach().max()) <= 1.0
    assert PreciseCritic(size, 3, width=4)(x).shape == (2,)
    logits, features = PreciseClassifier(size, 3, width=4, n_clusters=10)(x)
    assert logits.shape == (2, 10) and features.shape == (2, 4 * 4 * 4 * 4)


def test_the_28px_networks_have_the_official_parameter_count():
    w = 64  # gan_mnist.py's DIM; its critic has 10 outputs, ours 1
    generator = 138 * 4096 + 4096 + 4 * w * 2 * w * 25 + 2 * w + 2 * w * w * 25 + w + w * 25 + 1
    trunk = w * 25 + w + w * 2 * w * 25 + 2 * w + 2 * w * 4 * w * 25 + 4 * w
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(PreciseGenerator(28, 1, 10, w, 128)) == generator
    assert count(PreciseCritic(28, 1, w)) == trunk + 4096 + 1
    assert count(PreciseClassifier(28, 1, w, 10)) == trunk + 4096 * 10 + 10


def test_the_16px_layout_is_the_usps_rule():
    g, d = PreciseGenerator(16, 1, 10, 4, 8), PreciseCritic(16, 1, 4)
    assert [m.stride[0] for m in (g.deconv1, g.deconv2, g.deconv3)] == [2, 2, 1]
    assert [m.stride[0] for m in d.trunk.convs] == [1, 2, 2]
    assert not g.crop and PreciseGenerator(28, 1, 10, 4, 8).crop


@torch.no_grad()
def test_initialisation_is_tflibs():
    g = PreciseGenerator(28, 1, 10, width=64, noise_dim=128)  # the constructors initialise
    d = PreciseCritic(28, 1, width=64)
    # deconv 256 -> 128, k 5, s 2: fan_in 256·25/4, fan_out 128·25; conv 64 -> 128, s 2
    assert float(g.deconv1.weight.std()) == pytest.approx(math.sqrt(4 / (256 * 25 / 4 + 128 * 25)), rel=0.02)
    assert float(d.trunk.convs[1].weight.std()) == pytest.approx(math.sqrt(4 / (64 * 25 + 128 * 25 / 4)), rel=0.02)
    assert float(g.input.weight.std()) == pytest.approx(math.sqrt(2 / (138 + 4096)), rel=0.02)
    bound = math.sqrt(3) * math.sqrt(2 / (138 + 4096))
    assert float(g.input.weight.abs().max()) <= bound
    assert all(float(m.bias.abs().max()) == 0.0 for m in (g.input, g.deconv1, d.output))
    c = PreciseClassifier(28, 1, 64, 10)
    saved = c.output.weight.clone()
    tflib_init(c)  # the same distribution again: a redraw, not the PyTorch default
    assert float(c.output.weight.std()) == pytest.approx(float(saved.std()), rel=0.05)


def test_the_generator_step_moves_g_only_through_a_frozen_critic_and_classifier():
    cfg = PreciseConfig(**TINY)
    torch.manual_seed(0)
    networks = nn.ModuleDict({"clusterer": PreciseClusterer(16, 1, 4, 2, 8), "critic": PreciseCritic(16, 1, 2)})
    g_net = networks["clusterer"].generator
    optimizer = torch.optim.Adam(g_net.parameters(), lr=1e-2)
    before = {k: v.clone() for k, v in networks.state_dict().items()}
    precise._generator_step(networks, optimizer, cfg, 4, 10.0, torch.device("cpu"), "fp32",
                            torch.Generator().manual_seed(0))
    after = networks.state_dict()
    for name, value in before.items():
        moved = not torch.equal(value, after[name])
        assert moved == name.startswith("clusterer.generator."), name
    frozen = [*networks["critic"].parameters(), *networks["clusterer"].classifier.parameters()]
    assert all(p.grad is None for p in frozen)


def test_the_classifier_trains_on_generated_images_only(monkeypatch):
    """Real images are multiples of 1/255; G's sigmoid outputs are not. Every batch that C sees
    with gradients on is generated; real ones reach it only in the no-grad probe."""
    seen = []

    def record(module, inputs):
        seen.append((torch.is_grad_enabled(), inputs[0].detach().clone()))

    monkeypatch.setattr(precise, "probe_diagnostics", lambda *a, **k: (1.0, 1.0))
    original = PreciseClusterer.__init__

    def hooked(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.classifier.register_forward_pre_hook(record)

    monkeypatch.setattr(PreciseClusterer, "__init__", hooked)
    precise.train(request(PreciseConfig(**TINY)))
    trained_on = [x for grad, x in seen if grad]
    assert len(trained_on) == 4 * (2 + 1)  # n_class classifier steps and the G step per iteration
    for x in trained_on:
        assert float((x * 255 - (x * 255).round()).abs().max()) > 1e-3


def count_steps(monkeypatch) -> dict:
    """Wrap the loop's critic and classifier steps to count the calls the loop makes."""
    calls = {"critic": 0, "classifier": 0, "real": []}
    for name in ("critic", "classifier"):
        step = getattr(precise, f"_{name}_step")

        def counted(*args, _step=step, _name=name, **kwargs):
            calls[_name] += 1
            if _name == "critic":
                calls["real"].append(args[2].clone())
            return _step(*args, **kwargs)

        monkeypatch.setattr(precise, f"_{name}_step", counted)
    return calls


def test_training_runs_its_iterations_and_logs_every_curve(monkeypatch):
    calls = count_steps(monkeypatch)
    pictures = images(count=40)
    result = precise.train(request(PreciseConfig(**TINY), pictures=pictures))
    assert calls["critic"] == 4 * 2 and calls["classifier"] == 4 * 2
    # Each critic step takes the next full batch of a shuffled pass: 5 batches of 8 cover the
    # 40 train images once.
    rows = sorted(tuple((x * 255).round().flatten().tolist()) for x in torch.cat(calls["real"][:5]))
    assert rows == sorted(tuple(p.transpose(2, 0, 1).flatten().astype(float).tolist()) for p in pictures)
    assert result.curves["iteration"] == [2, 4]
    assert result.curves["eta"] == [pytest.approx(10.0), pytest.approx(12.0)]  # η at t = 1 and t = 3, τ = 2
    for name in precise.CURVES:
        assert len(result.curves[name]) == 2 and all(math.isfinite(v) for v in result.curves[name]), name
    assert all(0.0 <= h <= math.log(4) + 1e-6 for h in result.curves["real_entropy"])
    assert result.summary["critic_steps"] == 8 and result.summary["classifier_steps"] == 8
    assert result.summary["paper_fraction"] == pytest.approx(4 / 900_000, rel=1e-3)
    samples, columns = result.figures["samples"]
    assert columns == 3 and samples.shape == (4 * 3, 16, 16, 1) and samples.dtype == np.uint8
    ids, features = apply_model(result.model, images(count=10, seed=1), torch.device("cpu"))
    assert ids.shape == (10,) and set(ids) <= set(range(4)) and features.shape == (10, 4 * 4 * 4 * 2)


def test_the_codes_doubling_doubles_the_steps_the_loop_runs(monkeypatch):
    calls = count_steps(monkeypatch)
    result = precise.train(request(PreciseConfig(**{**TINY, "double_at": 0.5})))
    assert (calls["critic"], calls["classifier"]) == (2 * 2 + 2 * 4, 2 * 2 + 2 * 4)
    assert result.summary["critic_steps"] == calls["critic"] and result.summary["classifier_steps"] == 12


def test_colour_and_28px_images_train():
    result = precise.train(request(PreciseConfig(**TINY), pictures=images(count=20, size=28, channels=3)))
    assert result.figures["samples"][0].shape == (12, 28, 28, 3)


def test_bf16_autocast_trains_to_finite_losses():
    cfg = PreciseConfig(**{**TINY, "iterations": 2})
    result = precise.train(dataclasses.replace(request(cfg), precision="bf16"))
    assert all(math.isfinite(v) for v in result.curves["critic"] + result.curves["loss"])


def test_a_batch_above_the_train_images_is_refused():
    with pytest.raises(UserError, match="baselines.precise.batch_size = 64 exceeds the 40 train images"):
        precise.train(request(PreciseConfig(**{**TINY, "batch_size": 64})))


def test_an_interrupted_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    cfg = PreciseConfig(**{**TINY, "iterations": 6})
    straight = precise.train(request(cfg))
    resumed = resumed_after_interruption(precise, request, cfg, tmp_path, monkeypatch, stop_at_save=1)
    assert_same_model(straight.model, resumed.model)
    assert straight.curves == resumed.curves


def test_a_non_finite_loss_stops_training_naming_the_stage(monkeypatch):
    real = precise.generator_loss

    def poisoned(*args):
        loss, reality, entropy = real(*args)
        return loss * float("nan"), reality, entropy

    monkeypatch.setattr(precise, "generator_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="baseline@precise"):
        precise.train(request(PreciseConfig(**TINY)))


def test_checkpoint_round_trip_and_corrupt_file(tmp_path):
    result = precise.train(request(PreciseConfig(**TINY)))
    assert_checkpoint_round_trip(precise, result.model, result.arch, images(count=12, seed=3), tmp_path)
