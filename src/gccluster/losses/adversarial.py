"""The Wasserstein-GAN critic with gradient penalty (Gulrajani et al. 2017), shared by the
baselines that match distributions with a critic: DCCS's latent prior matching (Eq. 8-11)
and the precise-feature method's image critic (its Eq. 5)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, generator=None
) -> torch.Tensor:
    """E_x̂ (‖∇_x̂ C(x̂)‖₂ − 1)², x̂ = ε·real + (1 − ε)·fake with one ε ~ U[0, 1] per sample
    (DCCS Eq. 11, last term, without λ).

    Both inputs are detached: the penalty trains the critic only. The norm is
    sqrt(Σ g² + 1e-12), as in DCCS's `utils.calc_gradient_penalty`, so that a zero gradient
    has a finite derivative. `create_graph=True` lets the penalty's own gradient reach the
    critic's weights (a double backward).
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    epsilon = torch.rand(shape, device=real.device, dtype=real.dtype, generator=generator)
    mixed = (epsilon * real.detach() + (1 - epsilon) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norm = torch.sqrt(grad.reshape(grad.shape[0], -1).pow(2).sum(dim=1) + 1e-12)
    return (norm - 1).pow(2).mean()
