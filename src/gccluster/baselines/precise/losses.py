"""The precise-feature method's objectives (Gan et al. 2021, Sec. III-C), one function per
equation. Images are in [0, 1]; the critic has one output (dccs-precise.md B.2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gccluster.losses.adversarial import gradient_penalty


def critic_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gp_lambda: float,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 5 (Algorithm 1, lines 4-10): L_D = E_g D(x̃) − E_r D(x) + λ E_x̂ (‖∇_x̂ D(x̂)‖₂ − 1)²,
    x̂ = ε x + (1 − ε) x̃, one ε ~ U[0, 1] per pair (`losses.adversarial.gradient_penalty`).

    real, fake: (n, C, H, W); `fake` is detached (this loss trains D only). Returns
    (L_D, the Wasserstein estimate E_r D − E_g D, the penalty without λ), the last two
    detached: the estimate is the label-free curve the paper plots as the Earth Mover
    distance (Fig. 3b, f; ours is measured on the training batches, before each update)."""
    fake = fake.detach()
    real_scores, fake_scores = critic(real).float(), critic(fake).float()
    penalty = gradient_penalty(critic, real, fake, generator=generator).float()
    estimate = real_scores.mean() - fake_scores.mean()
    return -estimate + gp_lambda * penalty, estimate.detach(), penalty.detach()


def classifier_loss(logits: torch.Tensor, fake_labels: torch.Tensor) -> torch.Tensor:
    """Eq. 6: L_C = −(1/n) Σ_i Σ_j y_ij log q(y_j | x_i), the cross-entropy of C's softmax on
    generated images x_i = G(y_i, z_i) against their conditioning ("fake") labels y_i.

    logits: (n, K) of C on generated images only (C never sees real images in training);
    fake_labels: (n,) int64. The mean over the n samples, as printed."""
    return F.cross_entropy(logits.float(), fake_labels)


def generator_loss(fake_scores: torch.Tensor, fake_logits: torch.Tensor, fake_labels: torch.Tensor,
                   eta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 7 (Algorithm 1, lines 21-27): L_G = L_reality + η L_entropy with
    L_reality = −E D(G(y, z)) and L_entropy = Eq. 6 on the same fresh batch, through C.

    The caller keeps D and C fixed (only G's parameters get this gradient); both terms use
    one batch of (y, z), as the code's `gen_cost`. Returns (L_G, L_reality, L_entropy),
    the parts detached."""
    reality = -fake_scores.float().mean()
    entropy = classifier_loss(fake_logits, fake_labels)
    return reality + eta * entropy, reality.detach(), entropy.detach()


def eta_schedule(t: int, eta0: float, gamma: float, tau: int) -> float:
    """Eq. 8 as the code implements it: the staircase η_t = η_0 · γ^⌊t/τ⌋, t the number of
    generator updates before this one (`tf.train.exponential_decay(1., global_step, 30000,
    1.2, staircase=True)`, times the 10 of the 10-output critic). The printed update
    η ← η γ^⌊t/τ⌋ would compound at every step and overflow: not used."""
    return eta0 * math.pow(gamma, t // tau)
