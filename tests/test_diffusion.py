"""Eq. 3-6: the forward process, the loss and the sampler, against the formulas."""

import numpy as np
import pytest
import torch

from gccluster.config import DiffusionConfig
from gccluster.diffusion import (
    build_unet,
    diffusion_loss,
    grid_labels,
    make_scheduler,
    q_sample,
    reverse_step,
    sample_images,
    unet_arch,
)


def test_linear_schedule_and_alphas_cumprod():
    cfg = DiffusionConfig(timesteps=1000, beta_start=1e-4, beta_end=0.02)
    sched = make_scheduler(cfg)
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(sched.betas.numpy(), betas, rtol=1e-5)
    np.testing.assert_allclose(sched.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-4)
    assert (np.diff(sched.alphas_cumprod.numpy()) < 0).all()  # strictly decreasing


def test_q_sample_is_the_closed_form_of_eq3():
    sched = make_scheduler(DiffusionConfig())
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 1, 8, 8, generator=gen), torch.randn(4, 1, 8, 8, generator=gen)
    t = torch.tensor([0, 10, 500, 999])
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t].float()
    expected = abar.sqrt()[:, None, None, None] * x0 + (1 - abar).sqrt()[:, None, None, None] * eps
    torch.testing.assert_close(q_sample(sched, x0, eps, t), expected, rtol=1e-4, atol=1e-5)


class ZeroNet(torch.nn.Module):
    """ε_G ≡ 0: Eq. 6 then reduces to E ||ε||²."""

    class Out:
        def __init__(self, sample):
            self.sample = sample

    def forward(self, x, t, class_labels=None):
        return self.Out(torch.zeros_like(x))


def test_diffusion_loss_eq6_with_a_zero_predictor():
    sched = make_scheduler(DiffusionConfig())
    x0 = torch.rand(3, 1, 4, 4)
    loss = diffusion_loss(ZeroNet(), sched, x0, torch.zeros(3, dtype=torch.long), torch.Generator().manual_seed(7))
    # Replay the generator: t first, then ε.
    replay = torch.Generator().manual_seed(7)
    torch.randint(0, 1000, (3,), generator=replay)
    eps = torch.randn(x0.shape, generator=replay)
    assert loss.item() == pytest.approx(float((eps**2).mean()), rel=1e-6)


def test_unet_is_conditioned_on_the_cluster():
    cfg = DiffusionConfig(block_channels=(8, 16), dropout=0.0)
    unet = build_unet(**unet_arch(cfg, 8, 1, 3)).eval()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500, 500])
    with torch.no_grad():
        a = unet(x, t, class_labels=torch.tensor([0, 0])).sample
        b = unet(x, t, class_labels=torch.tensor([2, 2])).sample
    assert a.shape == x.shape
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("sampler,steps", [("ddim", 3), ("ddpm", 5)])
def test_sampler_shapes_range_and_determinism(sampler, steps):
    cfg = DiffusionConfig(block_channels=(8, 16), timesteps=5 if sampler == "ddpm" else 1000,
                          sampler=sampler, sample_steps=steps)
    unet = build_unet(**unet_arch(cfg, 8, 1, 3))
    labels = grid_labels(3, 2)
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2])
    first = sample_images(unet, cfg, labels, torch.device("cpu"), torch.Generator().manual_seed(1))
    again = sample_images(unet, cfg, labels, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert first.shape == (6, 8, 8, 1) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)


def ddpm_step_reference(x_t, eps, t, betas, z):
    """Eq. 4-5 by hand in float64: μ = (x_t - β_t / sqrt(1 - ᾱ_t) ε) / sqrt(α_t), σ² = β̃_t."""
    betas = betas.double()
    abar = torch.cumprod(1 - betas, 0)
    beta, alpha = betas[t], 1 - betas[t]
    mean = (x_t.double() - beta / (1 - abar[t]).sqrt() * eps.double()) / alpha.sqrt()
    if t == 0:
        return mean
    tilde_beta = beta * (1 - abar[t - 1]) / (1 - abar[t])
    return mean + tilde_beta.sqrt() * z.double()


@pytest.mark.parametrize("t", [0, 1, 37, 999])
@pytest.mark.parametrize("clip", [False, True])
def test_one_reverse_ddpm_step_is_eq5_when_x0_estimate_stays_in_range(t, clip):
    sched = make_scheduler(DiffusionConfig(clip_sample=clip))
    gen = torch.Generator().manual_seed(t)
    x0 = torch.rand(2, 1, 4, 4, generator=gen) * 1.6 - 0.8  # inside [-1, 1]
    eps = torch.randn(2, 1, 4, 4, generator=gen)
    abar = sched.alphas_cumprod[t]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps  # so that x0's estimate from eps is x0
    step = reverse_step(sched, eps, torch.tensor(t), x_t, torch.Generator().manual_seed(5))
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(5))
    expected = ddpm_step_reference(x_t, eps, t, sched.betas, z)
    torch.testing.assert_close(step.double(), expected, rtol=1e-4, atol=1e-4)


def test_clip_sample_changes_the_step_only_when_x0_estimate_leaves_the_range():
    t = 500
    eps = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    x0 = torch.full((1, 1, 4, 4), 3.0)  # far outside [-1, 1]
    unclipped, clipped = (make_scheduler(DiffusionConfig(clip_sample=c)) for c in (False, True))
    abar = unclipped.alphas_cumprod[t]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    a = reverse_step(unclipped, eps, torch.tensor(t), x_t, torch.Generator().manual_seed(1))
    b = reverse_step(clipped, eps, torch.tensor(t), x_t, torch.Generator().manual_seed(1))
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.double(), ddpm_step_reference(x_t, eps, t, unclipped.betas, z), rtol=1e-4, atol=1e-4)
    # Clipped: x0's estimate is 1 instead of 3, so the mean moves by c0 (3 - 1), c0 = sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t).
    c0 = unclipped.alphas_cumprod[t - 1].sqrt() * unclipped.betas[t] / (1 - abar)
    torch.testing.assert_close(a - b, torch.full_like(a, float(2 * c0)), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("preset", ["cifar10", "cifar100_20", "stl10"])
def test_paper_presets_unet_has_the_residual_blocks_their_comment_states(preset):
    """The presets' comment: 8 encoder + 8 decoder blocks (the paper's 16), plus one decoder
    block per level and 2 in the middle: 22 ResnetBlock2D."""
    from diffusers.models.resnet import ResnetBlock2D

    from gccluster.presets import preset_params

    unet = build_unet(**unet_arch(preset_params(preset).diffusion, 32, 3, 10))
    assert sum(len(block.resnets) for block in unet.down_blocks) == 8
    assert sum(len(block.resnets) for block in unet.up_blocks) == 8 + 4
    assert sum(isinstance(m, ResnetBlock2D) for m in unet.modules()) == 22
