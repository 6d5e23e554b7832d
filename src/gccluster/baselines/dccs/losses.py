"""DCCS losses (Zhao et al., ECCV 2020), one function per equation of section 3.

Shapes: encoder features a (B, A) (the flattened conv activation), latent z = [z_s, z_c]
(B, S + K) with z_c = softmax of the category logits, category logits of a clean image and
of its augmented view (B, K), critic scores (B, 1). Each function returns a scalar tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gccluster.losses.adversarial import gradient_penalty


def mutual_information_loss(
    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    features: torch.Tensor,
    latent: torch.Tensor,
    permutation: torch.Tensor,
) -> torch.Tensor:
    """L_MI, Eq. 6: the JSD estimator of I(X, Z) (Eq. 3-5, Hjelm et al.).

    −(E_pos log σ(D(x, z)) + E_neg log(1 − σ(D(x, z')))), where a positive pairs an image with
    its own code and a negative with the code of another image of the batch
    (z' = z[permutation], which may map i to i, a rare false negative, as in the official code).
    Choices the paper leaves open, taken from the official code: D reads the encoder's
    flattened conv activation, not the image ("X"); the two expectations are averaged over
    the 2B pairs (a binary cross-entropy with mean reduction), i.e. ½ of Eq. 6 as printed.
    """
    positives = discriminator(features, latent)
    negatives = discriminator(features, latent[permutation])
    logits = torch.cat([positives, negatives]).float()
    targets = torch.cat([torch.ones_like(positives), torch.zeros_like(negatives)]).float()
    return F.binary_cross_entropy_with_logits(logits, targets)


def augmentation_invariance_loss(clean_logits: torch.Tensor, augmented_logits: torch.Tensor) -> torch.Tensor:
    """L_Aug, Eq. 7: KL(Q(z_c|x) ‖ Q(z_c|T(x))), averaged over the batch.

    (1/B) Σ_i Σ_k p_ik (log p_ik − log p'_ik), p = softmax(clean), p' = softmax(augmented):
    the direction of the paper and of the code (`KLDivLoss(log p', p)`). Gradients reach both
    branches (the clean one is not detached, as in the code).
    """
    log_p = F.log_softmax(clean_logits.float(), dim=1)
    log_q = F.log_softmax(augmented_logits.float(), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()


def encoder_adversarial_loss(critic_on_encoded: torch.Tensor) -> torch.Tensor:
    """L^Q_Adv, Eq. 10: −E_{z~Q_Z} C(z); the encoder moves its codes where the critic scores
    the prior."""
    return -critic_on_encoded.float().mean()


def wasserstein_estimate(critic_on_prior: torch.Tensor, critic_on_encoded: torch.Tensor) -> torch.Tensor:
    """Ŵ = E_{P_Z} C(z̃) − E_{Q_Z} C(z), the critic's estimate of W(Q_Z, P_Z) (Eq. 8): the
    quantity whose convergence the paper watches (4.2, Fig. 3); our stopping signal."""
    return critic_on_prior.float().mean() - critic_on_encoded.float().mean()


def critic_loss(
    critic: Callable[[torch.Tensor], torch.Tensor],
    prior: torch.Tensor,
    encoded: torch.Tensor,
    gp_lambda: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L^C_Adv, Eq. 11: E_{Q_Z} C(z) − E_{P_Z} C(z̃) + λ E_ẑ (‖∇_ẑ C(ẑ)‖₂ − 1)², with ẑ on the
    lines between pairs of prior and encoded codes (`gradient_penalty`).

    Returns (loss, Ŵ) with Ŵ = −(first two terms), detached: the value Eq. 8 maximises.
    """
    prior, encoded = prior.float(), encoded.float().detach()
    estimate = wasserstein_estimate(critic(prior), critic(encoded))
    loss = -estimate + gp_lambda * gradient_penalty(critic, prior, encoded, generator)
    return loss, estimate.detach()


@dataclass(frozen=True)
class DCCSWeights:
    mi: float  # β_MI
    aug: float  # β_Aug
    adv: float  # β_Adv


def encoder_objective(weights: DCCSWeights, mi: torch.Tensor, aug: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """L^Q, Eq. 12: β_MI L_MI + β_Aug L_Aug + β_Adv L^Q_Adv. D minimises L^D = β_MI L_MI
    (Eq. 13) with the same optimizer step: L_Aug and L^Q_Adv do not depend on D, so one
    backward of L^Q gives D exactly the gradient of Eq. 13."""
    return weights.mi * mi + weights.aug * aug + weights.adv * adv


def critic_objective(weights: DCCSWeights, adversarial: torch.Tensor) -> torch.Tensor:
    """L^C, Eq. 14: β_Adv L^C_Adv."""
    return weights.adv * adversarial
