"""Eq. 8-12 against independent computations."""

import math

import pytest
import torch

from gccluster.losses.calibration import (
    CalibrationWeights,
    cluster_wise_matching,
    gaussian_kernel,
    gcc_objective,
    head_scores,
    median_bandwidth,
    mmd_per_cluster,
    reliable_metric_loss,
)


def mmd_reference(real, real_y, gen, gen_y, sigma, unbiased):
    """Brute-force double loops over pairs, cluster by cluster (Eq. 8-9, mean normalisation).

    unbiased: the within-set means leave out the pairs i = j (U-statistic), and a cluster with
    fewer than two members on either side has no term."""

    def k(a, b):
        return math.exp(-sum((x - y) ** 2 for x, y in zip(a, b)) / (2 * sigma**2))

    def within(points):
        pairs = [(i, j) for i in range(len(points)) for j in range(len(points)) if not (unbiased and i == j)]
        return sum(k(points[i], points[j]) for i, j in pairs) / len(pairs)

    total = 0.0
    for c in set(real_y) & set(gen_y):
        r = [x for x, y in zip(real, real_y) if y == c]
        g = [x for x, y in zip(gen, gen_y) if y == c]
        if unbiased and (len(r) < 2 or len(g) < 2):
            continue
        d_rg = sum(k(a, b) for a in r for b in g) / (len(r) * len(g))
        total += within(r) + within(g) - 2 * d_rg
    return total


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
@pytest.mark.parametrize("seed", range(4))
def test_mmd_matches_double_loop(seed, estimator):
    gen = torch.Generator().manual_seed(seed)
    real, fake = torch.randn(12, 3, generator=gen), torch.randn(9, 3, generator=gen) + 0.5
    real_y = torch.randint(0, 4, (12,), generator=gen)
    fake_y = torch.randint(0, 4, (9,), generator=gen)
    expected = mmd_reference(real.tolist(), real_y.tolist(), fake.tolist(), fake_y.tolist(), 1.3,
                             unbiased=estimator == "unbiased")
    value = mmd_per_cluster(real, real_y, fake, fake_y, 1.3, estimator=estimator)
    assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_mmd_default_is_unbiased_zero_in_expectation_for_iid_samples():
    """Two i.i.d. samples of one distribution at B = 128, K = 10 (the default round's batch):
    the default estimator averages to 0, the biased V-statistic to a positive floor."""
    gen = torch.Generator().manual_seed(0)
    default, biased = [], []
    for _ in range(300):
        real, fake = torch.randn(128, 4, generator=gen), torch.randn(128, 4, generator=gen)
        real_y, fake_y = torch.randint(0, 10, (128,), generator=gen), torch.randint(0, 10, (128,), generator=gen)
        default.append(mmd_per_cluster(real, real_y, fake, fake_y, 2.0).item())
        biased.append(mmd_per_cluster(real, real_y, fake, fake_y, 2.0, estimator="biased").item())
    default, biased = torch.tensor(default), torch.tensor(biased)
    standard_error = default.std() / math.sqrt(len(default))
    assert abs(default.mean()) < 4 * standard_error
    assert biased.mean() > 0.1 and biased.mean() > 20 * standard_error


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_mmd_zero_for_identical_sets_and_positive_otherwise(estimator):
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1] * 5)
    # Identical sets: the biased estimate is exactly 0; the unbiased one is 2 (mean K over
    # pairs i != j) - 2 (mean K over all pairs, diagonal included) < 0, by exactly 2 (1 - mean
    # offdiagonal K) / n per cluster.
    same = mmd_per_cluster(x, y, x.clone(), y.clone(), 1.0, estimator=estimator).item()
    if estimator == "biased":
        assert same == pytest.approx(0.0, abs=1e-6)
    else:
        assert same < 0.0
    assert mmd_per_cluster(x, y, x + 1.0, y, 1.0, estimator=estimator).item() > 0.1


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_mmd_ignores_clusters_missing_on_one_side(estimator):
    real = torch.tensor([[0.0], [0.3], [5.0], [6.0]])
    fake = torch.tensor([[0.1], [0.2]])
    # Cluster 1 exists only among real features: no term for it, the value is cluster 0's alone.
    with_extra = mmd_per_cluster(real, torch.tensor([0, 0, 1, 1]), fake, torch.tensor([0, 0]), 1.0, estimator=estimator)
    alone = mmd_per_cluster(real[:2], torch.tensor([0, 0]), fake, torch.tensor([0, 0]), 1.0, estimator=estimator)
    assert with_extra.item() == pytest.approx(alone.item(), rel=1e-6)
    assert alone.item() != 0.0


def test_mmd_single_points_hand_value():
    # One real at 0, one generated at 1, sigma 1. Biased: 1 + 1 - 2 exp(-1/2). Unbiased: a
    # cluster needs two members on each side, so there is no term at all.
    args = (torch.tensor([[0.0]]), torch.tensor([3]), torch.tensor([[1.0]]), torch.tensor([3]), 1.0)
    assert mmd_per_cluster(*args, estimator="biased").item() == pytest.approx(2 - 2 * math.exp(-0.5), rel=1e-6)
    assert mmd_per_cluster(*args).item() == 0.0


def test_unbiased_mmd_two_point_hand_value():
    # Real {0, 1}, generated {0, 2} in one cluster, sigma 1, k(d) = exp(-d^2 / 2):
    # d_r = k(1), d_g = k(2), d_rg = (k(0) + k(2) + k(1) + k(1)) / 4.
    k = lambda d: math.exp(-d * d / 2)  # noqa: E731
    expected = k(1) + k(2) - 2 * (1 + k(2) + 2 * k(1)) / 4
    value = mmd_per_cluster(torch.tensor([[0.0], [1.0]]), torch.tensor([0, 0]),
                            torch.tensor([[0.0], [2.0]]), torch.tensor([0, 0]), 1.0)
    assert value.item() == pytest.approx(expected, rel=1e-6)


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
    assert reliable_metric_loss(probs, labels).item() == pytest.approx(0.04, rel=1e-6)  # Σ_i, as printed
    assert reliable_metric_loss(probs, labels, "mean").item() == pytest.approx(0.04 / 2, rel=1e-6)
    with pytest.raises(ValueError, match="allowed 'sum'"):
        reliable_metric_loss(probs, labels, "max")


def test_reliable_metric_loss_is_the_brute_force_sum_over_images():
    # Eq. 12 adds L_ml to means (L_d, L_cwm): with Σ_i, one image's pull on F does not shrink
    # with the batch. A brute-force loop over images and clusters gives the same value.
    gen = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(16, 4, generator=gen), dim=1)
    labels = torch.randint(0, 4, (16,), generator=gen)
    brute = sum((probs[i, k] - probs[i, labels[i]]) ** 2
                for i in range(16) for k in range(4) if probs[i, k] > probs[i, labels[i]])
    assert reliable_metric_loss(probs, labels).item() == pytest.approx(brute.item(), rel=1e-6)
    assert reliable_metric_loss(probs, labels).item() == pytest.approx(
        16 * reliable_metric_loss(probs, labels, "mean").item(), rel=1e-6)


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


def test_head_scores_softmax_or_logits():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    expected = torch.tensor([math.exp(2.0), 1.0, math.exp(-1.0)])
    torch.testing.assert_close(head_scores(logits, "softmax"), (expected / expected.sum())[None])
    torch.testing.assert_close(head_scores(logits, "logits"), logits)
    with pytest.raises(ValueError):
        head_scores(logits, "probits")


def test_ml_on_logits_shrinks_quadratically_with_the_logit_scale():
    # Why softmax is the default: on logits, halving every logit (same predictions) quarters L_ml.
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.5, 2.0, 1.0]])
    labels = torch.tensor([1, 0])
    full = reliable_metric_loss(head_scores(logits, "logits"), labels)
    half = reliable_metric_loss(head_scores(logits / 2, "logits"), labels)
    assert half.item() == pytest.approx(full.item() / 4, rel=1e-6)
    # (3-1)^2 for image 0; (2-0.5)^2 + (1-0.5)^2 for image 1; summed over the two images.
    assert full.item() == pytest.approx(4.0 + 2.25 + 0.25, rel=1e-6)
