"""SimCLR view augmentations, batched on the training device (kornia).

Each sample in a batch gets its own random parameters, so one call makes a whole batch of
views on the GPU without a DataLoader. Input and output are float images in [0, 1],
shape (B, C, H, W).

Policies (chosen by `pretrain.augment.policy`; `auto` picks by dataset), each a geometric
part followed by a photometric part:
- `digits`: crops and small affine warps; no flips (a flipped 2 is not a 2).
- `grayscale`: crops and horizontal flips, for centred clothing-like grey images
  (Fashion-MNIST).
- `simclr`: SimCLR's crop, flip, colour jitter and random grayscale (Chen et al. 2020),
  for natural images (CIFAR, STL-10).

Photometric part, for every policy (`pretrain.augment.jitter`, `.erasing`; null = the
policy's default): brightness and contrast jitter of strength `jitter` with probability
0.8 (SimCLR's strength and probability; on RGB the `simclr` policy's colour jitter already
holds it) and random erasing of one rectangle (2-20 % of the image) with probability
`erasing`. Without them two crops of one grey image share its overall brightness and
texture, and the pretext task is solved by matching those instead of shape (issue 11).
kornia's brightness, contrast and erasing work on 1-channel images.

Two backends draw the same views (`pretrain.augment.backend`): kornia's pipeline (the
reference, used on the CPU) and `FusedViews` (the same distributions in a few batched
kernels, used on GPUs, where kornia's per-op launches and parameter checks cost more than
the small model's step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

AUTO_POLICY = {
    "digits": "digits",
    "mnist": "digits",
    "fashion_mnist": "grayscale",
    "cifar10": "simclr",
    "cifar100_20": "simclr",
    "stl10": "simclr",
}


@dataclass(frozen=True)
class PolicyDefaults:
    crop_min_scale: float
    jitter: float  # brightness and contrast strength; 0 = none
    erasing: float  # probability of one random erasing; 0 = none


# digits: jitter and erasing chosen by K-means stability (README, "Label-free choices");
# grayscale: the recipe of the
# Fashion-MNIST probe of issue 11 (brightness/contrast 0.4 with p 0.8, erasing p 0.3, crops of
# scale 0.5-1, flips), fixed before it ran; simclr: SimCLR's.
POLICY_DEFAULTS = {
    "digits": PolicyDefaults(crop_min_scale=0.5, jitter=0.4, erasing=0.0),
    "grayscale": PolicyDefaults(crop_min_scale=0.5, jitter=0.4, erasing=0.3),
    "simclr": PolicyDefaults(crop_min_scale=0.2, jitter=0.0, erasing=0.0),
}


@dataclass(frozen=True)
class ViewSpec:
    """One policy with its numbers resolved: everything either backend needs to draw a view."""

    crop_min_scale: float
    crop_ratio: tuple[float, float]  # width / height of the crop, drawn log-uniformly
    flip: bool  # horizontal flip with p 0.5
    rotate_degrees: float  # digits' affine part: rotation in [-d, d] ...
    translate: float  # ... and shifts up to this fraction of the side, together with p affine_p
    affine_p: float
    jitter: tuple[float, float, float, float]  # brightness, contrast, saturation, hue strengths
    jitter_p: float
    grayscale_p: float
    erasing_p: float
    # simclr only: `pretrain.augment.jitter` as a second brightness/contrast jitter (p 0.8)
    # after SimCLR's colour jitter and grayscale, where every policy's photometric part goes
    extra_jitter: float = 0.0


def view_spec(name: str, crop_min_scale: float, jitter: float, erasing: float) -> ViewSpec:
    """The resolved policy: its geometric part and the photometric part (`photometric`)."""
    if name == "simclr":  # SimCLR's colour jitter (0.4, 0.4, 0.4, 0.1) already holds brightness/contrast
        colour, colour_p, grayscale_p, extra = (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, jitter
    else:
        colour, colour_p, grayscale_p, extra = (jitter, jitter, 0.0, 0.0), 0.8 if jitter > 0 else 0.0, 0.0, 0.0
    digits = name == "digits"
    return ViewSpec(
        crop_min_scale=crop_min_scale,
        crop_ratio=(0.8, 1.25) if digits else (3 / 4, 4 / 3),
        flip=not digits,  # a flipped 2 is not a 2
        rotate_degrees=15.0 if digits else 0.0,
        translate=0.1 if digits else 0.0,
        affine_p=0.8 if digits else 0.0,
        jitter=colour,
        jitter_p=colour_p,
        grayscale_p=grayscale_p,
        erasing_p=erasing,
        extra_jitter=extra,
    )


def kornia_views(spec: ViewSpec, size: int) -> nn.Module:
    """The policy as a kornia pipeline (the reference backend; per-sample parameters)."""
    ops: list[nn.Module] = [K.RandomResizedCrop((size, size), scale=(spec.crop_min_scale, 1.0),
                                                ratio=spec.crop_ratio)]
    if spec.affine_p > 0:
        ops.append(K.RandomAffine(degrees=spec.rotate_degrees, translate=(spec.translate, spec.translate),
                                  p=spec.affine_p))
    if spec.flip:
        ops.append(K.RandomHorizontalFlip())
    if spec.jitter_p > 0:
        brightness, contrast, saturation, hue = spec.jitter
        ops.append(K.ColorJitter(brightness, contrast, saturation, hue, p=spec.jitter_p))
    if spec.grayscale_p > 0:
        ops.append(K.RandomGrayscale(p=spec.grayscale_p))
    if spec.extra_jitter > 0:
        ops.append(K.ColorJitter(brightness=spec.extra_jitter, contrast=spec.extra_jitter, p=0.8))
    if spec.erasing_p > 0:
        ops.append(K.RandomErasing(scale=ERASING_SCALE, ratio=ERASING_RATIO, value=0.0, p=spec.erasing_p))
    return nn.Sequential(*ops)


ERASING_SCALE = (0.02, 0.2)
ERASING_RATIO = (0.3, 3.3)


class FusedViews(nn.Module):
    """`ViewSpec`'s views drawn on the input's device with its default generator, in a few
    batched kernels: one affine grid sample for crop, flip and affine warp together, then
    colour jitter, grayscale and erasing as per-sample blends and masks.

    Same distributions as `kornia_views` (crop area uniform in [crop_min_scale, 1] of the
    image, log-uniform ratio, 10 tries then the whole image, integer sizes and offsets;
    torchvision's jitter formulas through kornia.enhance, in one random order per call;
    erasing of 2-20 % with kornia's ratio draw), not the same numbers: kornia crops then
    resizes and warps (two interpolations), this samples the composed map once. Square
    images only (the affine part rotates in normalised coordinates).
    """

    def __init__(self, spec: ViewSpec):
        super().__init__()
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"fused augmentation needs square images, got {tuple(x.shape[-2:])}")
        spec = self.spec
        x = self._geometric(x)
        x = self._jitter(x, spec.jitter, spec.jitter_p)
        if spec.grayscale_p > 0:
            x = torch.where(self._coin(x, spec.grayscale_p), rgb_to_grayscale(x).expand_as(x), x)
        if spec.extra_jitter > 0:
            x = self._jitter(x, (spec.extra_jitter, spec.extra_jitter, 0.0, 0.0), 0.8)
        if spec.erasing_p > 0:
            x = self._erase(x)
        return x

    @staticmethod
    def _coin(x: torch.Tensor, p: float) -> torch.Tensor:
        """A per-sample Bernoulli(p) mask, shaped to broadcast over (C, H, W)."""
        return (torch.rand(x.shape[0], device=x.device) < p).view(-1, 1, 1, 1)

    def _geometric(self, x: torch.Tensor) -> torch.Tensor:
        spec, batch, side = self.spec, x.shape[0], x.shape[-1]
        device = x.device
        # RandomResizedCrop: 10 (area, ratio) candidates per sample, the first that fits.
        area = side * side * (spec.crop_min_scale + (1 - spec.crop_min_scale) * torch.rand(batch, 10, device=device))
        log_lo, log_hi = math.log(spec.crop_ratio[0]), math.log(spec.crop_ratio[1])
        ratio = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(batch, 10, device=device))
        width, height = torch.sqrt(area * ratio).round(), torch.sqrt(area / ratio).round()
        fits = (width >= 1) & (width <= side) & (height >= 1) & (height <= side)
        first = (fits.int().cumsum(1) == 1) & fits
        pick = first.int().argmax(1, keepdim=True)
        any_fit = fits.any(1)
        full = torch.full((batch,), float(side), device=device)
        width = torch.where(any_fit, width.gather(1, pick).squeeze(1), full)
        height = torch.where(any_fit, height.gather(1, pick).squeeze(1), full)
        left = torch.floor(torch.rand(batch, device=device) * (side - width + 1))
        top = torch.floor(torch.rand(batch, device=device) * (side - height + 1))
        # The crop box in normalised coordinates (align_corners=False: -1 and 1 are the outer pixel
        # edges). kornia resizes a crop with align_corners=True, first and last crop pixel centres
        # onto first and last output pixel centres: a scale of (w - 1) / (side - 1) about its centre.
        centre = torch.stack([(2 * left + width) / side - 1, (2 * top + height) / side - 1], dim=1)
        scale_x, scale_y = (width - 1) / (side - 1), (height - 1) / (side - 1)
        if spec.flip:
            scale_x = torch.where(torch.rand(batch, device=device) < 0.5, -scale_x, scale_x)
        # Affine warp of the cropped view: output u = R v + t, so the view point is v = R^T (u - t).
        warped = torch.rand(batch, device=device) < spec.affine_p
        angle = torch.deg2rad(spec.rotate_degrees * (2 * torch.rand(batch, device=device) - 1)) * warped
        shift = 2 * spec.translate * (2 * torch.rand(batch, 2, device=device) - 1) * warped.unsqueeze(1)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotation_t = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)  # R^T
        linear = torch.stack([scale_x, scale_y], 1).unsqueeze(2) * rotation_t  # S R^T
        offset = centre - torch.einsum("bij,bj->bi", linear, shift)
        theta = torch.cat([linear, offset.unsqueeze(2)], dim=2)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # "border": a bilinear sample at the image's edge clamps there, as crop + resize does.
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if spec.affine_p > 0:
            # kornia warps the cropped view with zero padding: what the warp brings in from
            # outside that view (v = R^T (u - t) outside [-1, 1]^2) is black, not the image
            # around the crop.
            to_view = torch.cat([rotation_t, -torch.einsum("bij,bj->bi", rotation_t, shift).unsqueeze(2)], dim=2)
            inside = F.affine_grid(to_view, list(x.shape), align_corners=False).abs().amax(-1) <= 1
            out = out * inside.unsqueeze(1)
        return out

    def _jitter(self, x: torch.Tensor, strengths: tuple[float, float, float, float], p: float) -> torch.Tensor:
        if p <= 0:
            return x
        batch, device = x.shape[0], x.device
        out = x.clamp(0, 1)
        brightness, contrast, saturation, hue = strengths
        # One order per call, as kornia's ColorJitter; torchvision's formulas (kornia.enhance).
        for step in torch.randperm(4).tolist():
            if step == 0 and brightness > 0:
                factor = 1 + brightness * (2 * torch.rand(batch, device=device) - 1)
                out = kornia.enhance.adjust_brightness_accumulative(out, factor.clamp_min(0)).clamp(0, 1)
            elif step == 1 and contrast > 0:
                factor = 1 + contrast * (2 * torch.rand(batch, device=device) - 1)
                out = kornia.enhance.adjust_contrast_with_mean_subtraction(out, factor.clamp_min(0)).clamp(0, 1)
            elif step == 2 and saturation > 0 and x.shape[1] == 3:
                factor = 1 + saturation * (2 * torch.rand(batch, device=device) - 1)
                out = kornia.enhance.adjust_saturation_with_gray_subtraction(out, factor.clamp_min(0)).clamp(0, 1)
            elif step == 3 and hue > 0 and x.shape[1] == 3:
                factor = hue * (2 * torch.rand(batch, device=device) - 1)
                out = kornia.enhance.adjust_hue(out, factor * 2 * math.pi).clamp(0, 1)
        return torch.where(self._coin(x, p), out, x)

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        batch, side, device = x.shape[0], x.shape[-1], x.device
        area = side * side * (ERASING_SCALE[0] + (ERASING_SCALE[1] - ERASING_SCALE[0]) * torch.rand(batch, device=device))
        # kornia's ratio draw: below or above 1 with equal chance, uniform within each side.
        low = ERASING_RATIO[0] + (1 - ERASING_RATIO[0]) * torch.rand(batch, device=device)
        high = 1 + (ERASING_RATIO[1] - 1) * torch.rand(batch, device=device)
        ratio = torch.where(torch.rand(batch, device=device) < 0.5, low, high)
        height = torch.sqrt(area * ratio).round().clamp(1, side)
        width = torch.sqrt(area / ratio).round().clamp(1, side)
        left = torch.floor(torch.rand(batch, device=device) * (side - width + 1)).view(-1, 1, 1)
        top = torch.floor(torch.rand(batch, device=device) * (side - height + 1)).view(-1, 1, 1)
        pixels = torch.arange(side, device=device, dtype=torch.float32)
        inside = ((pixels.view(1, -1, 1) >= top) & (pixels.view(1, -1, 1) < top + height.view(-1, 1, 1))
                  & (pixels.view(1, 1, -1) >= left) & (pixels.view(1, 1, -1) < left + width.view(-1, 1, 1)))
        erase = inside.unsqueeze(1) & self._coin(x, self.spec.erasing_p)
        return x.masked_fill(erase, 0.0)


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (torchvision's and kornia's weights), (B, 3, H, W) -> (B, 1, H, W)."""
    return kornia.color.rgb_to_grayscale(x)


def resolve_policy(policy: str, dataset: str, channels: int) -> str:
    """The policy `auto` stands for; `simclr` on grayscale images is refused (params
    validation says so first: colour jitter and random grayscale need RGB)."""
    # An image folder (no entry) takes the policy of its kind of images.
    name = AUTO_POLICY.get(dataset, "simclr" if channels == 3 else "grayscale") if policy == "auto" else policy
    if name == "simclr" and channels != 3:
        raise ValueError(f"augmentation policy simclr needs RGB images, got {channels} channel(s)")
    return name


def build_view_augment(
    policy: str,
    dataset: str,
    image_size: int,
    channels: int,
    crop_min_scale: float | None,
    jitter: float | None = None,
    erasing: float | None = None,
    backend: str = "kornia",
) -> nn.Module:
    """One random view per image: an nn.Module mapping (B,C,H,W) in [0,1] to the same.
    None for `crop_min_scale`, `jitter` or `erasing` takes the policy's default.
    `backend`: "kornia" (the reference) or "fused" (`FusedViews`: the same distribution of
    views in a few batched kernels, for GPUs, where kornia's per-op cost dominates a step)."""
    name = resolve_policy(policy, dataset, channels)
    defaults = POLICY_DEFAULTS[name]
    spec = view_spec(
        name,
        defaults.crop_min_scale if crop_min_scale is None else crop_min_scale,
        defaults.jitter if jitter is None else jitter,
        defaults.erasing if erasing is None else erasing,
    )
    if backend == "fused":
        return FusedViews(spec)
    if backend != "kornia":
        raise ValueError(f"augmentation backend {backend!r} (allowed: kornia, fused)")
    return kornia_views(spec, image_size)


def resolve_backend(backend: str, device_type: str) -> str:
    """`auto` = fused on a GPU (kornia's per-op launches dominate a small model's step there),
    kornia on the CPU (the reference; CPU results stay those of earlier runs)."""
    if backend == "auto":
        return "fused" if device_type == "cuda" else "kornia"
    return backend
