"""SimCLR view policies."""

import pytest
import torch

from gccluster.data.augment import build_view_augment, resolve_policy


def test_view_augment_policies_by_dataset_and_simclr_needs_rgb():
    assert resolve_policy("auto", "digits", 1) == "digits"
    assert resolve_policy("auto", "fashion_mnist", 1) == "grayscale"
    assert resolve_policy("auto", "cifar10", 3) == "simclr"
    with pytest.raises(ValueError, match="simclr needs RGB images"):
        resolve_policy("simclr", "mnist", 1)
    views = build_view_augment("auto", "cifar10", 32, 3, None)(torch.rand(4, 3, 32, 32))
    assert views.shape == (4, 3, 32, 32) and 0.0 <= views.min() and views.max() <= 1.0


def _fused(policy, dataset, size, channels, **overrides):
    return build_view_augment(policy, dataset, size, channels, overrides.pop("crop_min_scale", None),
                              backend="fused", **overrides)


def test_fused_views_without_crop_zoom_flip_or_photometry_are_the_image():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 12, 12)
    # crop scale 1: only the whole image fits, so the sampled grid hits the pixel centres
    views = _fused("grayscale", "fashion_mnist", 12, 1, crop_min_scale=1.0, jitter=0.0, erasing=0.0)(images)
    flipped = images.flip(-1)
    same = (views - images).abs().flatten(1).amax(1) < 1e-5
    mirrored = (views - flipped).abs().flatten(1).amax(1) < 1e-5
    assert bool((same | mirrored).all())
    assert 0.25 < mirrored.float().mean().item() < 0.75  # horizontal flips with p 0.5


def test_fused_and_kornia_crops_zoom_alike():
    """One statistic of the crop distribution, compared between backends: the horizontal
    range of a ramp image seen in a view's middle row (full image 1, a crop of width w: w/side)."""
    side = 28
    ramp = torch.linspace(0, 1, side).view(1, 1, 1, side).expand(3000, 1, side, side).contiguous()
    ranges = {}
    for backend in ("kornia", "fused"):
        torch.manual_seed(1)
        augment = build_view_augment("grayscale", "fashion_mnist", side, 1, None, jitter=0.0, erasing=0.0,
                                     backend=backend)
        row = augment(ramp)[:, 0, side // 2, 2:-2]
        ranges[backend] = (row.amax(1) - row.amin(1)).mean().item()
    assert 0.5 < ranges["fused"] < 0.95
    assert abs(ranges["fused"] - ranges["kornia"]) < 0.01, ranges


def test_fused_photometry_and_erasing_rates_follow_the_policy():
    torch.manual_seed(2)
    flat = torch.full((2000, 1, 16, 16), 0.5)
    views = _fused("grayscale", "fashion_mnist", 16, 1)(flat)  # jitter 0.4 p 0.8, erasing p 0.3
    assert views.shape == flat.shape and views.min() >= 0 and views.max() <= 1
    erased = views == 0
    erased_share = erased.flatten(1).any(1).float().mean().item()
    assert 0.25 < erased_share < 0.35
    area = erased.flatten(1).float().mean(1)[erased.flatten(1).any(1)]
    assert 0.015 < area.min().item() and area.max().item() < 0.26 and 0.07 < area.mean().item() < 0.15
    kept = views.masked_fill(erased, float("nan"))
    means = kept.flatten(1).nanmean(1)
    assert 0.75 < (means - 0.5).abs().gt(1e-3).float().mean().item() < 0.85  # brightness with p 0.8
    assert means.min() > 0.5 * 0.6 - 1e-4 and means.max() < 0.5 * 1.4 + 1e-4


def test_fused_simclr_views_turn_a_fifth_grey_and_digits_views_rotate():
    torch.manual_seed(3)
    colour = torch.rand(1000, 3, 8, 8)
    views = _fused("simclr", "cifar10", 8, 3)(colour)
    grey = (views[:, 0] - views[:, 1]).abs().amax((1, 2)) + (views[:, 1] - views[:, 2]).abs().amax((1, 2)) < 1e-6
    assert 0.15 < grey.float().mean().item() < 0.25
    bar = torch.zeros(500, 1, 16, 16)
    bar[:, :, 7:9, :] = 1.0  # a horizontal bar: rotations tilt it, so its rows spread
    views = _fused("digits", "digits", 16, 1, crop_min_scale=1.0, jitter=0.0)(bar)
    tilted = (views > 0.2).any(dim=3).sum(dim=(1, 2)) > 4
    assert 0.3 < tilted.float().mean().item() <= 0.8  # affine with p 0.8, small angles tilt less


def test_augment_backend_auto_is_fused_on_cuda_and_kornia_on_cpu():
    from gccluster.data.augment import FusedViews, resolve_backend

    assert resolve_backend("auto", "cuda") == "fused" and resolve_backend("auto", "cpu") == "kornia"
    assert resolve_backend("kornia", "cuda") == "kornia"
    assert isinstance(build_view_augment("auto", "digits", 16, 1, None, backend="fused"), FusedViews)
    with pytest.raises(ValueError, match="allowed: kornia, fused"):
        build_view_augment("auto", "digits", 16, 1, None, backend="opencv")


def test_simclr_jitter_override_adds_the_photometric_jitter_after_grayscale_in_both_backends():
    ops = [type(m).__name__ for m in build_view_augment("simclr", "cifar10", 32, 3, None, jitter=0.3)]
    assert ops == ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale", "ColorJitter"]
    fused = _fused("simclr", "cifar10", 8, 3, jitter=0.3)
    assert fused.spec.extra_jitter == 0.3 and _fused("simclr", "cifar10", 8, 3).spec.extra_jitter == 0.0


def test_fused_digits_warp_fills_black_outside_the_cropped_view_as_kornia():
    torch.manual_seed(4)
    white = torch.ones(400, 1, 16, 16)
    views = _fused("digits", "digits", 16, 1, jitter=0.0)(white)
    black_corner = (views[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]] < 0.5).any(1).float().mean().item()
    kornia_views = build_view_augment("digits", "digits", 16, 1, None, jitter=0.0)(white)
    kornia_corner = (kornia_views[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]] < 0.5).any(1).float().mean().item()
    assert black_corner > 0.3 and abs(black_corner - kornia_corner) < 0.15, (black_corner, kornia_corner)
