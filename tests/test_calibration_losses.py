"""Eq. 8-12 against independent computations."""

import math

import pytest
import torch

from gccluster.losses.calibration import (
    CalibrationWeights,
    cluster_wise_matching,
    gaussian_kernel,
    gcc_objective,
    median_bandwidth,
    mmd_per_cluster,
    reliable_metric_loss,
)


def mmd_reference(real, real_y, gen, gen_y, sigma):
    """Brute-force double loops over pairs, cluster by cluster (Eq. 8-9, mean normalisation)."""

    def k(a, b):
        return math.exp(-sum((x - y) ** 2 for x, y in zip(a, b)) / (2 * sigma**2))

    total = 0.0
    for c in set(real_y) & set(gen_y):
        r = [x for x, y in zip(real, real_y) if y == c]
        g = [x for x, y in zip(gen, gen_y) if y == c]
        d_r = sum(k(a, b) for a in r for b in r) / len(r) ** 2
        d_g = sum(k(a, b) for a in g for b in g) / len(g) ** 2
        d_rg = sum(k(a, b) for a in r for b in g) / (len(r) * len(g))
        total += d_r + d_g - 2 * d_rg
    return total


@pytest.mark.parametrize("seed", range(4))
def test_mmd_matches_double_loop(seed):
    gen = torch.Generator().manual_seed(seed)
    real, fake = torch.randn(12, 3, generator=gen), torch.randn(9, 3, generator=gen) + 0.5
    real_y = torch.randint(0, 4, (12,), generator=gen)
    fake_y = torch.randint(0, 4, (9,), generator=gen)
    expected = mmd_reference(real.tolist(), real_y.tolist(), fake.tolist(), fake_y.tolist(), 1.3)
    assert mmd_per_cluster(real, real_y, fake, fake_y, 1.3).item() == pytest.approx(expected, rel=1e-5)


def test_mmd_zero_for_identical_sets_and_positive_otherwise():
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1] * 5)
    assert mmd_per_cluster(x, y, x.clone(), y.clone(), 1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert mmd_per_cluster(x, y, x + 1.0, y, 1.0).item() > 0.1


def test_mmd_ignores_clusters_missing_on_one_side():
    real = torch.tensor([[0.0], [5.0]])
    fake = torch.tensor([[0.0], [0.0]])
    # Cluster 1 exists only among real features: no term for it; cluster 0 matches exactly.
    value = mmd_per_cluster(real, torch.tensor([0, 1]), fake, torch.tensor([0, 0]), 1.0)
    assert value.item() == pytest.approx(0.0, abs=1e-7)


def test_mmd_single_points_hand_value():
    # One real at 0, one generated at 1, sigma 1: 1 + 1 - 2 exp(-1/2).
    value = mmd_per_cluster(torch.tensor([[0.0]]), torch.tensor([3]), torch.tensor([[1.0]]), torch.tensor([3]), 1.0)
    assert value.item() == pytest.approx(2 - 2 * math.exp(-0.5), rel=1e-6)


def test_kernel_and_median_bandwidth():
    a = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert gaussian_kernel(a, a, 5.0)[0, 1].item() == pytest.approx(math.exp(-25 / 50), rel=1e-6)
    pts = torch.tensor([[0.0], [1.0], [3.0]])  # distances 1, 3, 2 -> median 2
    assert median_bandwidth(pts).item() == pytest.approx(2.0)


def test_cwm_hand_value_and_sign():
    # Two clusters on orthogonal axes, points exactly on their axis: inter 0, intra 1 -> -1.
    f = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert cluster_wise_matching(f, y).item() == pytest.approx(-1.0, abs=1e-6)
    # Labels across the axes: equal-label pairs are orthogonal (intra 0); of the four
    # different-label pairs two are aligned (inter 1/2) -> 0.5.
    mixed = cluster_wise_matching(f, torch.tensor([0, 1, 0, 1]))
    assert mixed.item() == pytest.approx(0.5 - 0.0, abs=1e-6)
    assert mixed > cluster_wise_matching(f, y)


def test_cwm_gradient_pulls_same_label_together():
    f = torch.tensor([[1.0, 0.2], [0.2, 1.0], [1.0, -1.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1])
    loss = cluster_wise_matching(f, y)
    loss.backward()
    moved = torch.nn.functional.normalize(f.detach() - 0.1 * f.grad, dim=1)
    before = torch.nn.functional.normalize(f.detach(), dim=1)
    assert (moved[0] @ moved[1]) > (before[0] @ before[1])


def test_reliable_metric_loss_worked_example():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    labels = torch.tensor([1, 1])
    # Image 0: conditioning p_1 = 0.3; only p_0 = 0.5 exceeds it -> (0.2)^2 = 0.04.
    # Image 1: p_1 = 0.6 is the largest -> 0.
    assert reliable_metric_loss(probs, labels).item() == pytest.approx(0.04 / 2, rel=1e-6)


def test_reliable_metric_loss_zero_iff_conditioning_cluster_on_top():
    probs = torch.softmax(torch.randn(20, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    top = probs.argmax(dim=1)
    assert reliable_metric_loss(probs, top).item() == 0.0
    assert reliable_metric_loss(probs, (top + 1) % 5).item() > 0.0


def test_objective_weights_and_ablation():
    parts = {"d": torch.tensor(2.0), "cwm": torch.tensor(-0.5), "ml": torch.tensor(0.25)}
    assert gcc_objective(parts, CalibrationWeights()).item() == pytest.approx(1.75)
    assert gcc_objective(parts, CalibrationWeights(d=0.0)).item() == pytest.approx(-0.25)
    assert gcc_objective(parts, CalibrationWeights(ml=0.0, cwm=2.0)).item() == pytest.approx(1.0)
