"""DCCS (Zhao et al. 2020): each loss against a hand or independent computation."""

import math

import pytest
import torch
import torch.nn.functional as F

from gccluster.baselines.dccs.losses import (
    DCCSWeights,
    augmentation_invariance_loss,
    critic_loss,
    encoder_adversarial_loss,
    encoder_objective,
    mutual_information_loss,
    wasserstein_estimate,
)
from gccluster.baselines.dccs.model import (
    DCCSCritic,
    DCCSDiscriminator,
    DCCSEncoder,
    latent_code,
    sample_prior,
)
from gccluster.losses.adversarial import gradient_penalty


def linear_critic(weight: torch.Tensor, bias: float = 0.5):
    return lambda z: z @ weight.unsqueeze(1) + bias


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared():
    """∇_z (w·z + b) = w everywhere, so the penalty is (‖w‖ − 1)² whatever the inputs."""
    weight = torch.tensor([3.0, 0.0, 4.0])  # ‖w‖ = 5
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    assert gradient_penalty(linear_critic(weight), real, fake).item() == pytest.approx(16.0, rel=1e-5)


def test_gradient_penalty_trains_the_critic_not_its_inputs():
    """create_graph: the penalty has a gradient in the critic's weights, d/dw (‖w‖−1)² =
    2(‖w‖−1) w/‖w‖; none reaches the (detached) inputs."""
    weight = torch.tensor([3.0, 0.0, 4.0], requires_grad=True)
    real = torch.randn(4, 3, requires_grad=True)
    penalty = gradient_penalty(linear_critic(weight), real, torch.randn(4, 3))
    penalty.backward()
    assert torch.allclose(weight.grad, 2 * 4 * torch.tensor([3.0, 0.0, 4.0]) / 5, atol=1e-5)
    assert real.grad is None


def test_gradient_penalty_interpolates_between_the_two_sets():
    """For C(z) = ‖z‖²/2, ∇C(ẑ) = ẑ: with real = fake the norm is that point's norm whatever ε."""
    point = torch.tensor([[0.6, 0.8]])  # norm 1: no penalty
    critic = lambda z: 0.5 * (z**2).sum(dim=1, keepdim=True)  # noqa: E731
    assert gradient_penalty(critic, point, point).item() == pytest.approx(0.0, abs=1e-6)
    far = 3 * point  # norm 3
    assert gradient_penalty(critic, far, far).item() == pytest.approx(4.0, rel=1e-5)


def test_critic_loss_is_eq_11_with_the_wasserstein_estimate_beside_it():
    weight = torch.tensor([1.0, 2.0, 2.0])  # ‖w‖ = 3: penalty 4
    prior, encoded = torch.randn(6, 3), torch.randn(6, 3)
    critic = linear_critic(weight)
    loss, estimate = critic_loss(critic, prior, encoded, gp_lambda=10.0)
    expected_w = (prior @ weight).mean() - (encoded @ weight).mean()
    assert estimate.item() == pytest.approx(expected_w.item(), rel=1e-5)
    assert loss.item() == pytest.approx(-expected_w.item() + 10.0 * 4.0, rel=1e-5)
    assert wasserstein_estimate(critic(prior), critic(encoded)).item() == pytest.approx(expected_w.item(), rel=1e-5)


def test_augmentation_loss_is_kl_of_the_clean_from_the_augmented_posterior():
    """Eq. 7: KL(Q(z_c|x) ‖ Q(z_c|T(x))), checked against torch.distributions, and not the
    reverse direction (which differs for these values)."""
    clean = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 3.0]])
    augmented = torch.tensor([[0.0, 1.0, 0.0], [1.0, -2.0, 0.5]])
    p = torch.distributions.Categorical(logits=clean)
    q = torch.distributions.Categorical(logits=augmented)
    forward = torch.distributions.kl_divergence(p, q).mean()
    reverse = torch.distributions.kl_divergence(q, p).mean()
    value = augmentation_invariance_loss(clean, augmented)
    assert value.item() == pytest.approx(forward.item(), rel=1e-5)
    assert abs(forward.item() - reverse.item()) > 0.1
    # The official code's expression: KLDivLoss(batchmean)(log_softmax(augmented), softmax(clean)).
    code = F.kl_div(F.log_softmax(augmented, dim=1), F.softmax(clean, dim=1), reduction="batchmean")
    assert value.item() == pytest.approx(code.item(), rel=1e-5)


def test_mutual_information_loss_is_half_of_eq_6_from_the_scores():
    """Mean BCE over the 2B pairs = −½ (mean log σ(D+) + mean log(1 − σ(D−)))."""
    features = torch.tensor([[1.0], [2.0], [-1.0]])
    latent = torch.tensor([[0.5, 0.0], [0.0, 1.0], [1.0, 1.0]])
    discriminator = lambda a, z: a * z.sum(dim=1, keepdim=True)  # noqa: E731
    permutation = torch.tensor([2, 0, 1])
    positive = features * latent.sum(dim=1, keepdim=True)
    negative = features * latent[permutation].sum(dim=1, keepdim=True)
    by_hand = -0.5 * (torch.log(torch.sigmoid(positive)).mean() + torch.log(1 - torch.sigmoid(negative)).mean())
    value = mutual_information_loss(discriminator, features, latent, permutation)
    assert value.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_encoder_adversarial_loss_is_minus_the_mean_critic_score():
    assert encoder_adversarial_loss(torch.tensor([[1.0], [2.0], [6.0]])).item() == pytest.approx(-3.0)


def test_encoder_objective_gives_d_exactly_the_gradient_of_eq_13():
    """One backward of L^Q (Eq. 12) trains D as L^D = β_MI L_MI (Eq. 13) would."""
    torch.manual_seed(0)
    discriminator = DCCSDiscriminator(feature_dim=5, latent_dim=4)
    features, latent = torch.randn(6, 5), torch.randn(6, 4)
    permutation = torch.randperm(6)
    weights = DCCSWeights(mi=0.5, aug=2.0, adv=1.0)

    def d_grads(loss):
        discriminator.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in discriminator.parameters()]

    aug, adv = torch.tensor(0.7, requires_grad=True), torch.tensor(-0.3, requires_grad=True)
    mi = mutual_information_loss(discriminator, features, latent, permutation)
    total = encoder_objective(weights, mi, aug, adv)
    assert total.item() == pytest.approx(0.5 * mi.item() + 2.0 * 0.7 - 0.3, rel=1e-6)
    from_total = d_grads(total)
    from_eq13 = d_grads(0.5 * mutual_information_loss(discriminator, features, latent, permutation))
    assert all(torch.allclose(a, b) for a, b in zip(from_total, from_eq13))


def test_prior_is_one_hot_uniform_categories_and_gaussian_style():
    generator = torch.Generator().manual_seed(0)
    z = sample_prior(20000, style_dim=50, n_clusters=10, sigma=0.1, generator=generator, device=torch.device("cpu"))
    style, category = z[:, :50], z[:, 50:]
    assert torch.equal(category.sum(dim=1), torch.ones(20000)) and set(category.unique().tolist()) == {0.0, 1.0}
    shares = category.mean(dim=0)
    assert torch.all((shares - 0.1).abs() < 0.01)
    assert style.std().item() == pytest.approx(0.1, rel=0.02) and abs(style.mean().item()) < 0.002


def test_latent_code_puts_style_first_then_category_probabilities():
    style, logits = torch.randn(3, 50), torch.randn(3, 10)
    z = latent_code(style, logits)
    assert torch.equal(z[:, :50], style)
    assert torch.allclose(z[:, 50:], torch.softmax(logits, dim=1))


@pytest.mark.parametrize("size,feature_dim", [(28, 5 * 5 * 128), (16, 4 * 4 * 128), (32, 8 * 8 * 128)])
def test_encoder_shapes_follow_the_official_encoder28(size, feature_dim):
    encoder = DCCSEncoder(in_channels=1, image_size=size, style_dim=50, n_clusters=10)
    style, logits, features = encoder(torch.randn(4, 1, size, size))
    assert style.shape == (4, 50) and logits.shape == (4, 10) and features.shape == (4, feature_dim)
    assert encoder.feature_dim == feature_dim
    assert DCCSCritic(60)(torch.randn(4, 60)).shape == (4, 1)


def test_official_28px_encoder_has_the_code_parameter_count():
    """conv 1*64*16 + BN 128, conv 64*128*16 + BN 256, fc 3200*1024 + BN 2048, fc 1024*60 + 60."""
    encoder = DCCSEncoder(in_channels=1, image_size=28, style_dim=50, n_clusters=10)
    expected = 1 * 64 * 16 + 128 + 64 * 128 * 16 + 256 + 3200 * 1024 + 2048 + 1024 * 60 + 60
    assert sum(p.numel() for p in encoder.parameters()) == expected
    assert math.isclose(encoder.conv[0].weight.std().item(), math.sqrt(2 / (16 + 64 * 16)), rel_tol=0.15)


def test_latent_code_stays_float32_under_bf16_autocast():
    """The critic compares z with exact one-hot prior codes: z_c must not be rounded to bf16."""
    encoder = DCCSEncoder(in_channels=1, image_size=16, style_dim=50, n_clusters=10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        style, logits, _ = encoder(torch.randn(4, 1, 16, 16))
        z = latent_code(style, logits)
    assert z.dtype == torch.float32
    assert torch.allclose(z[:, 50:], torch.softmax(logits.float(), dim=1))
