"""Eq. 1 and Eq. 2 against slow references written from the equations."""

import math

import pytest
import torch
import torch.nn.functional as F

from gccluster.losses.clustering import pseudo_label_cross_entropy
from gccluster.losses.contrastive import nt_xent


def nt_xent_reference(z_a, z_b, tau):
    """Eq. 1 with explicit loops: for each of the 2B views, -log(exp(s_pos) / sum_{j!=i} exp(s_ij))."""
    views = torch.cat([z_a, z_b]).double()
    n = views.shape[0]
    batch = n // 2
    losses = []
    for i in range(n):
        positive = (i + batch) % n
        sims = [
            float(torch.dot(views[i], views[j]) / (views[i].norm() * views[j].norm())) / tau
            for j in range(n)
        ]
        denominator = sum(math.exp(sims[j]) for j in range(n) if j != i)
        losses.append(-math.log(math.exp(sims[positive]) / denominator))
    return sum(losses) / n


@pytest.mark.parametrize("batch,dim,tau", [(2, 3, 0.5), (5, 8, 0.1), (7, 4, 1.0)])
def test_nt_xent_matches_loop_reference(batch, dim, tau):
    gen = torch.Generator().manual_seed(batch * 10 + dim)
    z_a, z_b = torch.randn(batch, dim, generator=gen), torch.randn(batch, dim, generator=gen)
    assert nt_xent(z_a, z_b, tau).item() == pytest.approx(nt_xent_reference(z_a, z_b, tau), rel=1e-5)


def test_nt_xent_hand_value_two_orthogonal_pairs():
    # Views: a1 = b1 = e1, a2 = b2 = e2 (cosine 1 with the positive, 0 with the others).
    # Each anchor: -log(e^{1/t} / (e^{1/t} + 2 e^{0})) with t = 1 -> log(1 + 2/e).
    e1, e2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    z = torch.cat([e1, e2])
    assert nt_xent(z, z.clone(), 1.0).item() == pytest.approx(math.log(1 + 2 / math.e), rel=1e-6)


def test_nt_xent_scale_invariant_and_lower_for_aligned_views():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=gen)
    aligned = nt_xent(z, 3.0 * z, 0.2)
    shuffled = nt_xent(z, z[torch.randperm(16, generator=gen)], 0.2)
    assert aligned.item() == pytest.approx(nt_xent(z, z, 0.2).item(), rel=1e-5)  # cosine: scale-free
    assert aligned < shuffled


def test_nt_xent_rejects_mismatched_views():
    with pytest.raises(ValueError):
        nt_xent(torch.randn(4, 3), torch.randn(5, 3), 0.5)


def test_pseudo_label_cross_entropy_hand_value():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    first = -math.log(math.exp(2) / (math.exp(2) + 2))
    second = -math.log(1 / 3)
    assert pseudo_label_cross_entropy(logits, labels).item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_pseudo_label_cross_entropy_gradient_moves_towards_label():
    logits = torch.zeros(1, 4, requires_grad=True)
    pseudo_label_cross_entropy(logits, torch.tensor([3])).backward()
    # d/dz CE = softmax - onehot: negative only at the pseudo label.
    assert torch.allclose(logits.grad, torch.tensor([[0.25, 0.25, 0.25, -0.75]]))
    assert F.softmax(logits.detach() - 0.1 * logits.grad, dim=1)[0, 3] > 0.25
