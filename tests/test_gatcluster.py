"""GATCluster (Niu et al. 2020): each target and loss against a hand computation or a
float64 loop, the Gaussian attention map against its formula, the network, the views, and
Algorithm 1's training loop (big batches, ablations, resume, NaN guard, checkpoint)."""

import math

import numpy as np
import pytest
import torch

from baseline_helpers import assert_checkpoint_round_trip, assert_same_model, images, resumed_after_interruption
from baseline_helpers import request as baseline_request
from gccluster.baselines.common import ShuffledBatches, apply_model
from gccluster.baselines.gatcluster import method as gat
from gccluster.baselines.gatcluster import model as model_module
from gccluster.baselines.gatcluster.losses import (
    EPS,
    attention_loss,
    attention_target,
    balanced_target,
    entropy_loss,
    gatcluster_objective,
    kmeans_assignments,
    relation_target,
    separability_loss,
    transformation_invariance_loss,
)
from gccluster.baselines.gatcluster.model import (
    GATClusterClusterer,
    GATClusterNetwork,
    ImageFeatureModule,
    gaussian_attention_map,
    map_coordinates,
    to_grey,
    to_trunk_range,
)
from gccluster.baselines.gatcluster.params import GATClusterConfig
from gccluster.checkpoints import save_checkpoint
from gccluster.config import Params, validate_params
from gccluster.errors import NonFiniteLossError, UserError
from gccluster.runtime import images_to_tensor, to_model_input

L = torch.tensor([[0.5, 0.5], [1.0, 0.0]])  # z = (1.5, 0.5)


def test_balanced_target_is_eq_5_by_hand():
    # row 1: (0.5/1.5, 0.5/0.5) = (1/3, 1) -> (0.25, 0.75); row 2: (1/1.5, 0) -> (1, 0)
    assert torch.allclose(balanced_target(L), torch.tensor([[0.25, 0.75], [1.0, 0.0]]), atol=1e-4)


def test_attention_target_is_eq_11_by_hand_and_sharper_than_eq_5():
    l = torch.tensor([[0.6, 0.4], [0.2, 0.8]])  # z = (0.8, 1.2)
    # row 1: (0.36/0.8, 0.16/1.2) = (0.45, 0.1333) -> (0.7714, 0.2286)
    # row 2: (0.04/0.8, 0.64/1.2) = (0.05, 0.5333) -> (0.0857, 0.9143)
    expected = torch.tensor([[0.45 / 0.58333, 0.13333 / 0.58333], [0.05 / 0.58333, 0.53333 / 0.58333]])
    assert torch.allclose(attention_target(l), expected, atol=1e-4)
    assert attention_target(l).max(dim=1).values.gt(balanced_target(l).max(dim=1).values).all()


def test_targets_against_a_float64_loop():
    l = torch.softmax(torch.randn(30, 5), dim=1)
    ref = l.double().numpy()
    z = ref.sum(axis=0)
    for power, target in [(1, balanced_target(l)), (2, attention_target(l))]:
        for i in range(30):
            row = [ref[i, h] ** power / (z[h] + EPS) for h in range(5)]  # the code's EPS, in both sums
            assert np.allclose(target[i].numpy(), np.array(row) / (sum(row) + EPS), rtol=1e-5, atol=1e-7)


def test_relation_target_is_eq_6_with_the_codes_fallback():
    r, fallback = relation_target(np.array([0, 1, 0, 1, 1]), 2, 0.1)
    assert not fallback
    assert r.tolist() == [[1, 0, 1, 0, 0], [0, 1, 0, 1, 1], [1, 0, 1, 0, 0], [0, 1, 0, 1, 1], [0, 1, 0, 1, 1]]
    r, fallback = relation_target(np.array([0, 0, 0, 0]), 2, 0.1)  # k-means found one cluster of two
    assert fallback and torch.equal(r, torch.eye(4))
    # the smallest cluster (1 of 20) is below min_ratio * M / K = 0.5 * 20 / 2 = 5 members
    r, fallback = relation_target(np.array([0] * 19 + [1]), 2, 0.5)
    assert fallback and torch.equal(r, torch.eye(20))


def test_kmeans_runs_on_the_sharpened_targets_and_is_seeded():
    l = torch.cat([torch.tensor([[0.9, 0.05, 0.05]]).repeat(5, 1), torch.tensor([[0.05, 0.9, 0.05]]).repeat(5, 1),
                   torch.tensor([[0.05, 0.05, 0.9]]).repeat(5, 1)])
    labels = kmeans_assignments(attention_target(l), 3, n_init=2, seed=0)
    assert len(set(labels[:5])) == len(set(labels[5:10])) == len(set(labels[10:])) == 1 and len(set(labels)) == 3
    noisy = torch.softmax(torch.randn(40, 3), 1)
    assert np.array_equal(kmeans_assignments(noisy, 3, 2, seed=7), kmeans_assignments(noisy, 3, 2, seed=7))


def test_transformation_invariance_is_a_dot_product_by_hand():
    l_t = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    target = torch.tensor([[0.8, 0.2], [0.4, 0.6]])
    assert transformation_invariance_loss(l_t, target).item() == pytest.approx(-(0.8 + 0.5) / 2)


def test_separability_loss_against_a_loop_over_the_lower_triangle():
    l = torch.softmax(3 * torch.randn(9, 4), dim=1)
    r = (torch.rand(9, 9) < 0.4).float()
    r = torch.maximum(r, r.T).fill_diagonal_(1)
    ref = l.double()
    total, pairs = 0.0, 0
    for i in range(9):
        for j in range(i + 1):
            d = float(ref[i] @ ref[j] / ((ref[i].norm() + EPS) * (ref[j].norm() + EPS)))
            d = min(max(d, 0.0), 1.0)
            total -= r[i, j] * max(math.log(d), -100) + (1 - r[i, j]) * max(math.log(1 - d), -100)
            pairs += 1
    assert pairs == 9 * 10 // 2
    assert separability_loss(l, r).item() == pytest.approx(float(total) / pairs, rel=1e-4)


def test_separability_loss_is_zero_when_relations_match_one_hot_features():
    one_hot = torch.eye(3)[[0, 1, 0, 2]]
    r = (one_hot @ one_hot.T)
    assert separability_loss(one_hot, r).item() == pytest.approx(0.0, abs=1e-3)


def test_entropy_loss_is_minus_log_k_when_uniform_and_about_zero_when_collapsed():
    k = 10
    uniform = torch.full((32, k), 1 / k)
    assert entropy_loss(uniform).item() == pytest.approx(-math.log(k), rel=1e-6)
    collapsed = torch.eye(k)[[3] * 32]
    # p = (1, 0, ...): 1 log 1 plus nine floored terms EPS log EPS
    assert entropy_loss(collapsed).item() == pytest.approx(9 * EPS * math.log(EPS), rel=1e-4)
    balanced = torch.eye(k)[list(range(k)) * 3]
    assert entropy_loss(balanced).item() == pytest.approx(-math.log(k), rel=1e-6)


def test_attention_loss_is_eq_10_by_formula():
    l_a = torch.softmax(torch.randn(6, 4), dim=1)
    target = attention_target(torch.softmax(torch.randn(6, 4), dim=1))
    expected = sum(-(t * math.log(a) + (1 - t) * math.log(1 - a)) for a, t in
                   zip(l_a.double().flatten().tolist(), target.double().flatten().tolist())) / 24
    assert attention_loss(l_a, target).item() == pytest.approx(expected, rel=1e-5)


def test_objective_is_eq_3_with_either_reading_of_the_weights():
    parts = {name: torch.tensor(value) for name, value in
             {"r": 1.0, "t": 2.0, "e": 3.0, "e_att": 4.0, "a": 5.0}.items()}
    assert gatcluster_objective(parts, GATClusterConfig().weights()).item() == pytest.approx(1 + 5 * 2 + 3 * 7 + 5 * 5)
    paper = GATClusterConfig(loss_weights="paper").weights()
    assert gatcluster_objective(parts, paper).item() == pytest.approx(1 + 5 * 2 + 5 * 7 + 3 * 5)
    assert gatcluster_objective({"e": torch.tensor(3.0)}, paper).item() == pytest.approx(15.0)


def test_map_coordinates_are_row_major_in_the_unit_square():
    u = map_coordinates(6)
    assert u.shape == (36, 2)
    assert u[0].tolist() == [0.0, 0.0] and u[35].tolist() == [1.0, 1.0]
    assert torch.allclose(u[7], torch.tensor([0.2, 0.2])) and torch.allclose(u[1], torch.tensor([0.0, 0.2]))


@pytest.mark.parametrize(("reading", "mu", "denominator"), [("code", (0.2, 0.6), 2 * 0.05 * 0.6),
                                                             ("paper", (0.2, 0.9), 0.05 * 0.6)])
def test_gaussian_attention_map_of_a_known_theta(reading, mu, denominator):
    theta = torch.tensor([[0.2, 0.9, 0.6]])
    a = gaussian_attention_map(theta, 0.05, reading)
    assert a.shape == (1, 6, 6)
    for x in range(6):
        for y in range(6):
            direct = math.exp(-((x / 5 - mu[0]) ** 2 + (y / 5 - mu[1]) ** 2) / (denominator + 1e-5))
            assert a[0, x, y].item() == pytest.approx(direct, rel=1e-5, abs=1e-12)
    with pytest.raises(ValueError, match="attention"):
        gaussian_attention_map(theta, 0.05, "other")


@pytest.mark.parametrize("size", [16, 28, 32, 96])
def test_every_trunk_ends_in_a_six_by_six_map_of_k_channels(size):
    assert ImageFeatureModule(size, 7, 4)(torch.randn(2, 1, size, size)).shape == (2, 7, 6, 6)


def test_network_outputs_are_label_features_and_the_attention_branch_is_optional():
    net = GATClusterNetwork(16, 5, 8, True, 0.05, "code")
    l, l_a, pooled = net(torch.randn(4, 1, 16, 16))
    assert l.shape == l_a.shape == pooled.shape == (4, 5)
    assert torch.allclose(l.sum(1), torch.ones(4)) and torch.allclose(l_a.sum(1), torch.ones(4))
    assert net(torch.randn(4, 1, 16, 16), with_attention=False)[1] is None
    plain = GATClusterNetwork(16, 5, 8, False, 0.05, "code")
    assert plain(torch.randn(4, 1, 16, 16))[1] is None and not hasattr(plain, "theta")


def test_the_losses_reach_the_trunk_and_the_attention_module():
    torch.manual_seed(0)
    net = GATClusterNetwork(16, 4, 8, True, 0.05, "code").train()
    l, l_a, _ = net(torch.randn(8, 1, 16, 16))
    target = attention_target(torch.softmax(torch.randn(8, 4), 1))
    relations = torch.eye(8)
    for loss, module in [(transformation_invariance_loss(l, target), net.trunk),
                         (separability_loss(l, relations), net.trunk), (entropy_loss(l), net.trunk),
                         (attention_loss(l_a, target), net.trunk), (attention_loss(l_a, target), net.theta),
                         (entropy_loss(l_a), net.att_classifier)]:
        net.zero_grad()
        loss.backward(retain_graph=True)
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads)


def test_saturated_heads_stay_below_one_and_keep_a_bounded_gradient_under_bf16():
    """Both heads' softmax in float32 under CPU bf16 autocast: a softmax of 1 - 6e-5 would
    round to exactly 1.0 in bf16, where L_A's BCE against a target of 0.999 has a gradient of
    about 1e9 (the breakdowns of the bf16 runs on an AMX CPU)."""
    torch.manual_seed(0)
    net = GATClusterNetwork(16, 4, 8, True, 0.05, "code")
    with torch.no_grad():
        for head in (net.classifier, net.att_classifier):
            head[2].weight.zero_()
            head[2].bias.copy_(torch.tensor([12.0, 0.0, 0.0, 0.0]))  # softmax 1 - 6.1e-5 in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        l, l_a, _ = net(torch.randn(8, 1, 16, 16))
    assert l.dtype == l_a.dtype == torch.float32
    assert (l[:, 0] < 1).all() and (l_a[:, 0] < 1).all()
    target = torch.tensor([0.999, 1 / 3000, 1 / 3000, 1 / 3000]).expand(8, 4)
    attention_loss(l_a, target).backward()
    gradient = torch.cat([p.grad.flatten() for p in net.att_classifier.parameters()])
    assert torch.isfinite(gradient).all() and gradient.norm() < 1.0


@pytest.mark.parametrize("input_range", ["unit", "symmetric"])
def test_the_read_out_hands_the_trunk_grey_images_in_its_range(input_range):
    """The read-out takes the pipeline's [-1, 1] images (grey or RGB) to the trunk's range:
    ITU-R 601 grey, in [0, 1] for `unit` (the official code's) and left in [-1, 1] for
    `symmetric`, where a grey image reaches the trunk bit for bit (no round trip)."""
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model = GATClusterClusterer(16, 4, 4, True, 0.05, "code", input_range)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]  # in [-1, 1]: the weights sum to 1
    expected = luma if input_range == "symmetric" else (luma + 1) / 2
    grey = model.trunk_input(x)
    assert grey.shape == (2, 1, 16, 16)
    assert torch.allclose(grey[:, 0], expected, atol=1e-3)
    if input_range == "symmetric":
        assert torch.equal(model.trunk_input(x[:, :1]), x[:, :1])
    else:
        assert torch.allclose(model.trunk_input(x[:, :1]), (x[:, :1] + 1) / 2)
        # A black image is all zeros, the value the trunks' zero padding adds: no frame.
        assert model.trunk_input(-torch.ones(1, 1, 16, 16)).abs().max() == 0
    assert model.trunk_input(torch.ones(1, 3, 16, 16)).sub(1).abs().max() < 1e-3


@pytest.mark.parametrize("input_range", ["unit", "symmetric"])
def test_both_training_steps_feed_the_trunk_their_images_mapped_once(input_range):
    """Training keeps its images in [0, 1] and the trunk sees them in `input_range`: as they
    are (`unit`) or 2x - 1 (`symmetric`), mapped once, in Step 1's targets and in Step 2's
    Adam steps alike. A round trip through the pipeline's [-1, 1] ((2x - 1 + 1) / 2 in
    float32) would round some grey levels, and `unit` must see the exact bits."""
    levels = torch.arange(256, dtype=torch.float32) / 255.0  # every grey level of a uint8 image, once
    batch = torch.stack([levels[torch.randperm(256)].view(1, 16, 16) for _ in range(8)])
    assert not torch.equal((batch * 2 - 1 + 1) / 2, batch)  # the round trip this guards against
    expected = batch if input_range == "unit" else batch * 2 - 1
    cfg = GATClusterConfig(kmeans_n_init=1, target_chunk=3, input_range=input_range)
    net = GATClusterNetwork(16, 4, 4, True, 0.05, "code", input_range)
    seen = []
    net.trunk.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    targets = gat._targets(net, batch, cfg, 4, torch.device("cpu"), "fp32", torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(seen), expected)
    seen.clear()
    rows = torch.tensor([5, 1, 6])
    net.train()
    gat._step(lambda x: net(x)[:2], torch.optim.Adam(net.parameters()), batch, targets, rows, cfg, cfg.weights(),
              torch.device("cpu"), "fp32")
    assert torch.equal(torch.cat(seen), expected[rows])
    assert torch.equal(to_grey(batch), batch)  # grey images: as they are


@pytest.mark.parametrize("input_range", ["unit", "symmetric"])
def test_the_input_range_is_saved_and_the_read_out_feeds_the_trunk_in_it(input_range):
    batch = torch.rand(6, 1, 16, 16)
    assert torch.equal(to_trunk_range(batch, "unit"), batch)
    assert torch.allclose(to_trunk_range(batch, "symmetric"), batch * 2 - 1)
    result = gat.train(request(GATClusterConfig(**{**TINY, "input_range": input_range})))
    assert result.arch["input_range"] == input_range and result.model.network.input_range == input_range
    seen = []
    result.model.network.trunk.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    pictures = images(count=4, seed=2)
    apply_model(result.model, pictures, torch.device("cpu"), precision="fp32")
    pipeline = to_model_input(images_to_tensor(pictures, torch.device("cpu")))  # [-1, 1]
    if input_range == "symmetric":  # the pipeline's images as they are
        assert torch.equal(torch.cat(seen), pipeline)
    else:  # in [0, 1], as training's views: black is 0, the trunk's zero padding
        assert torch.allclose(torch.cat(seen), (pipeline + 1) / 2, atol=1e-7)
        assert torch.cat(seen).min() >= 0 and torch.cat(seen).max() <= 1


def test_every_input_range_has_both_maps_and_they_agree():
    """A range added to params' Literal needs its map from [0, 1] (training) and from [-1, 1]
    (read-out), and the two must give the trunk the same image."""
    assert set(model_module.FROM_UNIT) == set(model_module.FROM_SYMMETRIC) == set(model_module.INPUT_RANGES)
    unit = torch.rand(3, 1, 16, 16)
    for name in model_module.INPUT_RANGES:
        assert torch.allclose(model_module.FROM_UNIT[name](unit), model_module.FROM_SYMMETRIC[name](unit * 2 - 1),
                              atol=1e-6)


def test_an_unknown_input_range_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="input_range must be one of"):
        GATClusterNetwork(16, 4, 4, True, 0.05, "code", "imagenet")
    with pytest.raises(UserError, match="input_range") as err:
        validate_params({"baselines": {"gatcluster": {"input_range": "imagenet"}}})
    assert "\n" not in str(err.value)
    model = GATClusterClusterer(16, 4, 4, True, 0.05, "code", "unit")
    save_checkpoint(tmp_path / "model.pt", gat.CHECKPOINT_KIND, model, {**arch_before_input_range(),
                                                                        "input_range": "imagenet"})
    with pytest.raises(UserError, match="cannot rebuild the GATCluster model") as err:
        gat.load(tmp_path / "model.pt")
    assert "\n" not in str(err.value)


def test_a_checkpoint_saved_before_input_range_was_a_key_loads_as_unit(tmp_path):
    model = GATClusterClusterer(16, 4, 4, True, 0.05, "code", "unit")
    save_checkpoint(tmp_path / "model.pt", gat.CHECKPOINT_KIND, model, arch_before_input_range())
    assert gat.load(tmp_path / "model.pt").network.input_range == "unit"


def arch_before_input_range() -> dict:
    """A 16 px arch as checkpoints wrote it before `input_range` existed."""
    return {"image_size": 16, "n_clusters": 4, "width": 4, "attention_module": True, "alpha": 0.05,
            "attention": "code"}


def test_views_flip_clothing_but_not_digits():
    kinds = lambda dataset: [type(op).__name__ for op in gat.augmented_views(GATClusterConfig(), dataset, 1)]
    assert "RandomHorizontalFlip" not in kinds("digits") and "RandomHorizontalFlip" in kinds("fashion_mnist")
    assert kinds("digits")[-1] == "RandomAffine"


def test_big_batches_cover_every_image_once_per_pass_and_skip_a_too_small_remainder():
    generator = torch.Generator().manual_seed(0)
    batches = ShuffledBatches()
    first, second = batches.next(25, 10, 4, generator), batches.next(25, 10, 4, generator)
    third = batches.next(25, 10, 4, generator)  # 5 left >= 4: a smaller last batch
    assert [len(first), len(second), len(third)] == [10, 10, 5]
    assert sorted(torch.cat([first, second, third]).tolist()) == list(range(25))
    batches = ShuffledBatches()
    for _ in range(2):
        batches.next(23, 10, 4, generator)
    fresh = batches.next(23, 10, 4, generator)  # 3 left < 4: a new pass
    assert len(fresh) == 10 and batches.position == 10


def test_params_resolve_m_per_dataset_and_refuse_sizes_without_a_backbone():
    cfg = GATClusterConfig()
    assert [cfg.resolved_big_batch(d, 70000) for d in ("digits", "fashion_mnist", "cifar10", "cifar100_20",
                                                       "stl10")] == [1000, 4000, 4000, 6000, 1000]
    assert cfg.resolved_big_batch("digits", 437) == 437
    assert not cfg.resolved_flip("digits") and cfg.resolved_flip("cifar10")
    raw = Params().model_dump(mode="json")
    raw["baselines"]["run"] = ["gatcluster"]
    raw["data"]["image_size"] = 20
    with pytest.raises(UserError, match="baselines.gatcluster: images of 20 px"):
        validate_params(raw)


TINY = {"iterations": 2, "big_batch": 40, "repeats": 2, "width": 4, "kmeans_n_init": 2}


def request(config, pictures=None, checkpointer=None, seed=0):
    return baseline_request(config, images(count=56) if pictures is None else pictures, checkpointer, seed)


def test_training_runs_its_iterations_and_logs_every_part():
    result = gat.train(request(GATClusterConfig(**TINY)))
    # 56 images, M = 40: the 16 left after the first big batch are fewer than m2 = 32, so the
    # second iteration starts a new pass with 40 again; 40 // 32 = 1 step per pass, 2 passes
    assert result.summary == {"iterations": 2, "steps": 2 * 2, "big_batch": 40, "fallback_iterations":
                              result.summary["fallback_iterations"]}
    for name in gat.CURVES:
        assert len(result.curves[name]) == 2 and all(math.isfinite(v) for v in result.curves[name]), name
    ids, features = apply_model(result.model, images(count=10, seed=1), torch.device("cpu"))
    assert ids.shape == (10,) and set(ids) <= set(range(4)) and features.shape == (10, 4)


def test_the_ablations_drop_their_terms():
    result = gat.train(request(GATClusterConfig(**{**TINY, "ti": False, "sm": False, "am": False})))
    assert {"t", "r", "a", "e_att"}.isdisjoint(result.curves) and {"loss", "e"} <= set(result.curves)
    assert not hasattr(result.model.network, "theta")


def test_a_big_batch_below_one_sub_batch_is_refused():
    with pytest.raises(UserError, match="baselines.gatcluster: a big batch of 20 images"):
        gat.train(request(GATClusterConfig(**{**TINY, "big_batch": 20})))


def test_colour_images_train_through_the_grey_input():
    result = gat.train(request(GATClusterConfig(**TINY), pictures=images(count=56, channels=3)))
    ids, _ = apply_model(result.model, images(count=5, channels=3), torch.device("cpu"))
    assert ids.shape == (5,)


def test_an_interrupted_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    cfg = GATClusterConfig(**{**TINY, "iterations": 3})
    straight = gat.train(request(cfg))
    resumed = resumed_after_interruption(gat, request, cfg, tmp_path, monkeypatch, stop_at_save=1)
    assert_same_model(straight.model, resumed.model)
    assert straight.curves == resumed.curves


def test_a_non_finite_loss_stops_training_naming_the_stage(monkeypatch):
    monkeypatch.setattr(gat, "entropy_loss", lambda p: p.sum() * float("nan"))
    with pytest.raises(NonFiniteLossError, match="baseline@gatcluster"):
        gat.train(request(GATClusterConfig(**TINY)))


def test_checkpoint_round_trip_and_corrupt_file(tmp_path):
    result = gat.train(request(GATClusterConfig(**TINY)))
    assert_checkpoint_round_trip(gat, result.model, result.arch, images(count=12, seed=3), tmp_path)


def test_a_step_feeds_each_loss_its_rows_of_the_fixed_targets(monkeypatch):
    """Step 2 must hand L_T and L_A the targets of the sub-batch's own images and L_R the
    relations among them (rows and columns picked by the same indices)."""
    torch.manual_seed(0)
    net = GATClusterNetwork(16, 4, 4, True, 0.05, "code").train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    targets = {"t": torch.arange(40.0).view(10, 4), "a": torch.rand(10, 4), "r": torch.arange(100.0).view(10, 10)}
    rows = torch.tensor([7, 2, 5])
    seen = {}
    monkeypatch.setattr(gat, "transformation_invariance_loss", lambda l, t: seen.setdefault("t", t).sum() * 0 + l.sum())
    monkeypatch.setattr(gat, "separability_loss", lambda l, r: seen.setdefault("r", r).sum() * 0 + l.sum())
    monkeypatch.setattr(gat, "attention_loss", lambda l, t: seen.setdefault("a", t).sum() * 0 + l.sum())
    forward = lambda views: net(views, with_attention=True)[:2]  # noqa: E731
    gat._step(forward, optimizer, torch.randn(10, 1, 16, 16), targets, rows, GATClusterConfig(), (5.0, 3.0, 5.0),
              torch.device("cpu"), "fp32")
    assert torch.equal(seen["t"], targets["t"][rows]) and torch.equal(seen["a"], targets["a"][rows])
    assert seen["r"].tolist() == [[77, 72, 75], [27, 22, 25], [57, 52, 55]]


def test_nan_outputs_reach_the_total_instead_of_raising_inside_the_cross_entropies():
    nan_rows = torch.full((4, 3), float("nan"))
    assert math.isfinite(separability_loss(nan_rows, torch.eye(4)).item())
    assert math.isfinite(attention_loss(nan_rows, torch.full((4, 3), 1 / 3)).item())
    assert math.isnan(entropy_loss(nan_rows).item())  # so Eq. 3's total is NaN and the guard fires
