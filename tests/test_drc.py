"""DRC (Zhong et al. 2020): each loss against a brute-force or hand computation, the network,
the views, and the training loop (budget, heads, resume, NaN guard, checkpoint)."""

import math

import pytest
import torch
import torch.nn.functional as F

from baseline_helpers import assert_checkpoint_round_trip, assert_same_model, images, resumed_after_interruption
from baseline_helpers import request as baseline_request
from gccluster.baselines.common import apply_model
from gccluster.baselines.drc import method as drc
from gccluster.baselines.drc.losses import (
    assignment_feature_loss,
    assignment_probability_loss,
    cluster_regularisation_loss,
    drc_objective,
    similarity_matrix,
)
from gccluster.baselines.drc.model import (
    DRCNetwork,
    SobelFrontEnd,
    centre_view,
    crop_at,
    original_view,
    padded_crop_view,
)
from gccluster.baselines.drc.params import DRCConfig
from gccluster.config import Params, validate_params
from gccluster.errors import NonFiniteLossError, UserError

N, K, T_AP = 512, 10, 0.95


def slow_contrast(a, b, temperature, cosine):
    """-(1/R) Σ_i log softmax_j(s(a_i, b_j)/T)[i], one row at a time in float64."""
    a, b = a.double(), b.double()
    total = 0.0
    for i in range(len(a)):
        sims = []
        for j in range(len(b)):
            dot = float((a[i] * b[j]).sum())
            if cosine:
                norms = float(a[i].norm() * b[j].norm())
                dot = dot / norms if norms > 0 else 0.0
            sims.append(dot / temperature)
        total -= sims[i] - math.log(sum(math.exp(s) for s in sims))
    return total / len(a)


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_assignment_feature_loss_is_eq_5_row_by_row(similarity):
    z, z_aug = torch.randn(12, 5), torch.randn(12, 5)
    expected = slow_contrast(z, z_aug, 0.5, similarity == "cosine")
    assert assignment_feature_loss(z, z_aug, 0.5, similarity).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_assignment_probability_loss_is_eq_8_column_by_column(similarity):
    p, p_aug = torch.softmax(torch.randn(20, 4), 1), torch.softmax(torch.randn(20, 4), 1)
    expected = slow_contrast(p.T, p_aug.T, T_AP, similarity == "cosine")
    assert assignment_probability_loss(p, p_aug, T_AP, similarity).item() == pytest.approx(expected, rel=1e-5)


def test_assignment_probability_loss_at_balance_collapse_and_uniform():
    """Cosine L_AP, N = 512, K = 10, T = 0.95 (the specification's numpy check, by hand):
    balanced one-hot: each cluster meets only itself, -log(e^(1/T) / (e^(1/T) + 9)) = 1.421;
    collapse: that for the one full column, log K for the nine empty ones: 2.214;
    uniform: every column alike, log K = 2.303."""
    one_cluster = math.log(math.exp(1 / T_AP) + 9) - 1 / T_AP
    balanced = F.one_hot(torch.arange(N) % K, K).float()
    collapsed = F.one_hot(torch.zeros(N, dtype=torch.long), K).float()
    uniform = torch.full((N, K), 1 / K)
    assert assignment_probability_loss(balanced, balanced, T_AP).item() == pytest.approx(one_cluster, abs=1e-5)
    assert one_cluster == pytest.approx(1.421, abs=1e-3)
    collapse_value = (one_cluster + 9 * math.log(K)) / K
    assert assignment_probability_loss(collapsed, collapsed, T_AP).item() == pytest.approx(collapse_value, abs=1e-5)
    assert collapse_value == pytest.approx(2.214, abs=1e-3)
    assert assignment_probability_loss(uniform, uniform, T_AP).item() == pytest.approx(math.log(K), abs=1e-5)
    # Raw products saturate: a confident balanced partition scores ~0 (q_k.q_k = N/K = 51.2).
    assert assignment_probability_loss(balanced, balanced, T_AP, "dot").item() < 1e-6


def test_cluster_regularisation_is_n_over_k_at_balance_and_n_at_collapse():
    rows = 500  # a multiple of K: exactly equal sizes
    balanced = F.one_hot(torch.arange(rows) % K, K).float()
    collapsed = F.one_hot(torch.zeros(rows, dtype=torch.long), K).float()
    uniform = torch.full((rows, K), 1 / K)
    assert cluster_regularisation_loss(balanced).item() == pytest.approx(rows / K)
    assert cluster_regularisation_loss(collapsed).item() == pytest.approx(rows)
    assert cluster_regularisation_loss(uniform).item() == pytest.approx(rows / K)  # no reward for confidence
    p = torch.softmax(torch.randn(7, 3), 1)
    by_hand = sum(float(p[:, k].sum()) ** 2 for k in range(3)) / 7
    assert cluster_regularisation_loss(p).item() == pytest.approx(by_hand, rel=1e-6)


def test_objective_is_eq_10_and_the_ablation_weights_remove_terms():
    af, ap, cr = torch.tensor(2.0), torch.tensor(1.5), torch.tensor(100.0)
    assert drc_objective(af, ap, cr, 0.005).item() == pytest.approx(2.0 + 1.5 + 0.5)
    assert drc_objective(af, ap, cr, 0.005, ap_weight=0.0).item() == pytest.approx(2.5)
    assert drc_objective(af, ap, cr, 0.0).item() == pytest.approx(3.5)


def test_similarity_rejects_an_unknown_kind_and_treats_empty_columns_as_orthogonal():
    with pytest.raises(ValueError, match="'cosine' or 'dot'"):
        similarity_matrix(torch.ones(2, 2), torch.ones(2, 2), "l1")
    sims = similarity_matrix(torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[2.0, 0.0]]), "cosine")
    assert sims.tolist() == [[0.0], [1.0]]


def test_the_three_losses_reach_the_trunk():
    """Each term alone sends a gradient into the first conv of the trunk."""
    torch.manual_seed(0)
    net = DRCNetwork(1, 16, 4, 0, "small_cnn", 8, False)
    x, x_aug = torch.randn(8, 1, 16, 16), torch.randn(8, 1, 16, 16)
    first = net.trunk.conv[0][0].weight
    for term in ("af", "ap", "cr"):
        net.zero_grad()
        z, z_aug = net.heads[0](net.features(x)), net.heads[0](net.features(x_aug))
        p, p_aug = torch.softmax(z, 1), torch.softmax(z_aug, 1)
        loss = {"af": lambda: assignment_feature_loss(z, z_aug, 0.5),
                "ap": lambda: assignment_probability_loss(p, p_aug, T_AP),
                "cr": lambda: cluster_regularisation_loss(p)}[term]()
        loss.backward()
        assert first.grad is not None and first.grad.abs().sum() > 0, term


def test_sobel_front_end_gives_the_two_gradients_of_the_grey_image():
    ramp = torch.arange(5.0).repeat(5, 1)  # grey value grows by 1 per column
    x = ramp.expand(1, 3, 5, 5)
    out = SobelFrontEnd()(x)
    assert out.shape == (1, 2, 5, 5)
    assert torch.allclose(out[0, 0, 1:-1, 1:-1], torch.full((3, 3), -8.0))  # [1,0,-1] x [1,2,1]
    assert torch.allclose(out[0, 1, 1:-1, 1:-1], torch.zeros(3, 3))
    assert not list(SobelFrontEnd().parameters())


@pytest.mark.parametrize("backbone,size,channels,sobel", [("small_cnn", 16, 1, False), ("small_cnn", 28, 1, False),
                                                          ("resnet34", 32, 3, True)])
def test_network_shapes(backbone, size, channels, sobel):
    net = DRCNetwork(channels, size, 10, 70, backbone, 8, sobel).eval()
    features = net.features(torch.randn(2, channels, size, size))
    assert [head(features).shape[1] for head in net.heads] == [10, 70]


def test_original_view_crops_a_zoomed_image_and_the_test_view_its_centre():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(3, 1, 1, 1)
    assert torch.equal(crop_at(x, 2, torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1]))[1, 0],
                       torch.tensor([[4.0, 5.0], [8.0, 9.0]]))
    assert torch.equal(original_view(x, 1.0, torch.Generator().manual_seed(0)), x)  # no zoom: no crop
    views = original_view(x, 1.5, torch.Generator().manual_seed(0))  # 4 -> 6 px, crops at offsets 0..2
    assert views.shape == x.shape
    zoomed = F.interpolate(x, size=(6, 6), mode="bilinear", align_corners=False)
    windows = [zoomed[0, 0, i : i + 4, j : j + 4] for i in range(3) for j in range(3)]
    assert all(any(torch.equal(v[0], w) for w in windows) for v in views)
    assert torch.equal(centre_view(x, 1.5)[0, 0], zoomed[0, 0, 1:5, 1:5])


def test_padded_crop_view_shifts_each_image_by_at_most_the_padding_with_black_borders():
    x = torch.rand(400, 1, 6, 6) + 1.0  # no black pixel inside
    views = padded_crop_view(x, 2, torch.Generator().manual_seed(0))
    padded = F.pad(x, (2, 2, 2, 2))
    offsets = set()
    for image, view in zip(padded, views):
        found = [(i, j) for i in range(5) for j in range(5) if torch.equal(image[:, i : i + 6, j : j + 6], view)]
        assert len(found) == 1
        offsets.add(found[0])
    assert offsets == {(i, j) for i in range(5) for j in range(5)}  # per image, over all 25
    assert torch.equal(padded_crop_view(x, 0, torch.Generator()), x)


def test_the_original_view_pads_grey_images_and_resizes_colour_ones_unless_set():
    """A5's pad-and-crop on grey data, whose test view is the image itself; PICA's resize and
    crop on colour data, whose test view is the same resize's centre crop."""
    cfg = DRCConfig()
    assert (cfg.resolved_original_view(1), cfg.test_zoom(1)) == ("pad_crop", 1.0)
    assert (cfg.resolved_original_view(3), cfg.test_zoom(3)) == ("resize_crop", 1.25)
    forced = DRCConfig(original_view="resize_crop", original_zoom=1.5)
    assert (forced.resolved_original_view(1), forced.test_zoom(1)) == ("resize_crop", 1.5)
    x = torch.rand(8, 1, 4, 4)
    grey = drc.draw_original_views(x, DRCConfig(original_pad=1), torch.Generator().manual_seed(0))
    assert (grey == 0).any() and not torch.equal(grey, x)  # shifted into the black border
    zoomed = drc.draw_original_views(x, forced, torch.Generator().manual_seed(0))
    assert not (zoomed == 0).any()  # a resize and crop adds no border


def test_params_refuse_what_the_network_cannot_take():
    raw = Params().model_dump(mode="json")
    raw["baselines"]["drc"]["sobel"] = True
    with pytest.raises(UserError, match="baselines.drc.sobel"):
        validate_params(raw)
    assert DRCConfig().resolved_sobel(3) and not DRCConfig().resolved_sobel(1)
    assert [DRCConfig().resolved_crop_min_scale(d, c) for d, c in [("digits", 1), ("fashion_mnist", 1),
                                                                   ("cifar10", 3)]] == [0.6, 0.5, 0.2]


TINY = {"batch_size": 16, "epochs": 2, "width": 8, "overcluster_k": 6}


def request(config, pictures=None, checkpointer=None, seed=0):
    return baseline_request(config, images(count=40) if pictures is None else pictures, checkpointer, seed)


def test_training_runs_its_epochs_with_both_heads_and_logs_every_part():
    result = drc.train(request(DRCConfig(**TINY)))
    assert result.summary == {"epochs": 2, "steps": 2 * 2 * 2, "heads": 2}  # 40 // 16 = 2 steps per head
    for name in drc.CURVES:
        assert len(result.curves[name]) == 2 and all(math.isfinite(v) for v in result.curves[name]), name
    ids, features = apply_model(result.model, images(count=10, seed=1), torch.device("cpu"))
    assert ids.shape == (10,) and set(ids) <= set(range(4)) and features.shape == (10, 128)


def test_without_the_overclustering_head_only_the_main_head_trains():
    result = drc.train(request(DRCConfig(**{**TINY, "overcluster_k": 0})))
    assert len(result.model.network.heads) == 1 and "loss_over" not in result.curves
    assert result.summary["steps"] == 2 * 2


def test_colour_images_go_through_the_sobel_front_end():
    result = drc.train(request(DRCConfig(**TINY), pictures=images(channels=3)))
    assert isinstance(result.model.network.front, SobelFrontEnd)


def test_an_interrupted_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    cfg = DRCConfig(**{**TINY, "epochs": 3})
    straight = drc.train(request(cfg))
    resumed = resumed_after_interruption(drc, request, cfg, tmp_path, monkeypatch, stop_at_save=1)
    assert_same_model(straight.model, resumed.model)
    assert straight.curves == resumed.curves


def test_a_non_finite_loss_stops_training_naming_the_stage(monkeypatch):
    monkeypatch.setattr(drc, "cluster_regularisation_loss", lambda p: p.sum() * float("nan"))
    with pytest.raises(NonFiniteLossError, match="baseline@drc"):
        drc.train(request(DRCConfig(**TINY)))


def test_checkpoint_round_trip_and_corrupt_file(tmp_path):
    result = drc.train(request(DRCConfig(**TINY)))
    assert result.arch["original_zoom"] == 1.0  # grey data: pad_crop, scored on the images as they are
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    logits, features = result.model.eval()(x)
    assert torch.equal(features, result.model.network.features(x))
    assert torch.equal(logits, result.model.network.heads[0](features))
    assert_checkpoint_round_trip(drc, result.model, result.arch, images(count=12, seed=3), tmp_path)


def step_recording_losses(monkeypatch, cfg: DRCConfig, batch: torch.Tensor, names: tuple[str, ...]) -> dict:
    """One `_step` with the identity as augmentation on a fresh network; the arguments each
    loss function in `names` received, by name."""
    torch.manual_seed(0)
    net = DRCNetwork(1, 16, 4, 6, "small_cnn", 8, False).train()
    seen = {}

    def recorder(name, loss):
        def record(*args):
            seen[name] = args
            return loss(*args)
        return record

    for name in names:
        monkeypatch.setattr(drc, name, recorder(name, getattr(drc, name)))
    forward = lambda originals, views, head: drc.head_logits(net, originals, views, head)  # noqa: E731
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    drc._step(forward, 0, optimizer, lambda x: x, batch, cfg, torch.device("cpu"), "fp32", torch.Generator())
    return seen


@pytest.mark.parametrize("similarity, eq_5, eq_8", [("cosine", "cosine", "cosine"), ("dot", "dot", "dot"),
                                                     ("dot_af", "dot", "cosine")])
def test_each_similarity_value_sets_eq_5_and_eq_8_apart(monkeypatch, similarity, eq_5, eq_8):
    """`dot_af` is raw products in L_AF only: the step must hand Eq. 5 `dot` and Eq. 8 `cosine`."""
    cfg = DRCConfig(**{**TINY, "original_pad": 0, "similarity": similarity})
    seen = step_recording_losses(monkeypatch, cfg, torch.rand(5, 1, 16, 16),
                                 ("assignment_feature_loss", "assignment_probability_loss"))
    assert (seen["assignment_feature_loss"][-1], seen["assignment_probability_loss"][-1]) == (eq_5, eq_8)


def test_a_step_feeds_each_loss_what_eq_10_asks(monkeypatch):
    """With the identity as augmentation and no shift, the 2N augmented rows are the originals
    twice: the step must hand L_AF and L_AP the repeated originals' logits [1..N, 1..N] beside
    them (equal, since BatchNorm sees the same statistics), with T_AF and T_AP in place, and
    L_CR the N originals' probabilities."""
    cfg = DRCConfig(**{**TINY, "original_pad": 0, "t_af": 0.3, "t_ap": 0.7, "similarity": "dot"})
    seen = step_recording_losses(monkeypatch, cfg, torch.rand(5, 1, 16, 16),
                                 ("assignment_feature_loss", "assignment_probability_loss",
                                  "cluster_regularisation_loss"))
    repeated, augmented, t_af, similarity = seen["assignment_feature_loss"]
    assert repeated.shape == (10, 4) and (t_af, similarity) == (0.3, "dot")
    assert torch.allclose(repeated, augmented, atol=1e-5) and torch.equal(repeated[:5], repeated[5:])
    p, p_aug, t_ap, _ = seen["assignment_probability_loss"]
    assert torch.allclose(p, torch.softmax(repeated, 1)) and p_aug.shape == (10, 4) and t_ap == 0.7
    (originals,) = seen["cluster_regularisation_loss"]
    assert torch.allclose(originals, p[:5])
    assert augmented.requires_grad  # both views train the network


def test_each_epoch_trains_the_overclustering_head_first_then_the_main_head(monkeypatch):
    heads = []
    real_step = drc._step

    def spy(network, head, *args):
        heads.append(head)
        return real_step(network, head, *args)

    monkeypatch.setattr(drc, "_step", spy)
    drc.train(request(DRCConfig(**TINY)))
    assert heads == [1, 1, 0, 0] * 2  # 2 steps per pass, 2 epochs
