"""Stage I pretraining: one BatchNorm batch for both views, the projector kept, and the
grayscale photometric augmentations."""

import pytest
import torch
from torch import nn

from gccluster.config import DataConfig, PretrainConfig
from gccluster.data.augment import build_view_augment
from gccluster.data.prepare import prepare_dataset
from gccluster.features import kmeans_space_encoder
from gccluster.runtime import seed_everything
from gccluster.train import pretrain as pretrain_module


def test_both_views_share_one_batchnorm_batch_and_the_projector_is_returned(monkeypatch):
    seen = []
    real_build = pretrain_module.build_backbone

    def recording_backbone(**arch):
        backbone = real_build(**arch)
        backbone.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
        return backbone

    monkeypatch.setattr(pretrain_module, "build_backbone", recording_backbone)
    images = prepare_dataset(DataConfig(), "unused").train.images[:100]
    cfg = PretrainConfig(epochs=1, batch_size=50, width=4, projection_dim=8)
    result = pretrain_module.pretrain_simclr(images, "digits", cfg, torch.device("cpu"), seed_everything(0))
    assert seen == [100, 100]  # two steps, each one forward pass of 2 x 50 views
    assert result.projector_arch == {"in_dim": result.backbone.feature_dim, "out_dim": 8}
    z = kmeans_space_encoder(result.backbone.eval(), result.projector.eval(), "projection")(torch.zeros(3, 1, 16, 16))
    assert z.shape == (3, 8)


def test_kmeans_space_encoder():
    backbone, projector = nn.Linear(4, 3), nn.Linear(3, 2)
    assert kmeans_space_encoder(backbone, None, "backbone") is backbone
    assert kmeans_space_encoder(backbone, projector, "projection")(torch.zeros(5, 4)).shape == (5, 2)
    with pytest.raises(ValueError, match="needs the SimCLR projector"):
        kmeans_space_encoder(backbone, None, "projection")


def test_grayscale_policy_changes_brightness_and_erases_but_off_means_geometry_only():
    torch.manual_seed(0)
    flat = torch.full((400, 1, 16, 16), 0.5)  # a flat grey image: crops and flips leave it as is
    geometric = build_view_augment("grayscale", "fashion_mnist", 16, 1, None, jitter=0.0, erasing=0.0)
    assert torch.allclose(geometric(flat), flat)
    photometric = build_view_augment("grayscale", "fashion_mnist", 16, 1, None)  # policy defaults
    views = photometric(flat)
    means = views.mean(dim=(1, 2, 3))
    # brightness jitter 0.4 with p 0.8 moves most views' mean grey level
    assert (means - 0.5).abs().gt(0.01).float().mean() > 0.5
    # erasing (p 0.3) writes exact zeros into about 30% of the views
    erased = (views == 0).flatten(1).any(dim=1).float().mean().item()
    assert 0.2 < erased < 0.4
    assert views.shape == flat.shape and views.min() >= 0 and views.max() <= 1


def test_policy_defaults_can_be_overridden_one_by_one():
    ops = [type(m).__name__ for m in build_view_augment("digits", "digits", 16, 1, None, jitter=0.3, erasing=0.0)]
    assert ops == ["RandomResizedCrop", "RandomAffine", "ColorJitter"]
    ops = [type(m).__name__ for m in build_view_augment("simclr", "cifar10", 32, 3, None)]
    assert "RandomErasing" not in ops and ops.count("ColorJitter") == 1


def test_projector_checkpoint_round_trip_and_mismatch_is_one_clear_error(tmp_path):
    from gccluster.checkpoints import save_checkpoint
    from gccluster.errors import UserError
    from gccluster.models.heads import ProjectionHead
    from gccluster.models.loading import load_projector

    projector = ProjectionHead(in_dim=16, out_dim=4)
    path = tmp_path / "projector.pt"
    save_checkpoint(path, "projector", projector, {"in_dim": 16, "out_dim": 4})
    loaded = load_projector(path, expected_in_dim=16)
    x = torch.randn(3, 16)
    torch.testing.assert_close(loaded(x), projector.eval()(x))
    with pytest.raises(UserError, match=r"projector\.pt: projector expects 16-d features, the backbone gives 32"):
        load_projector(path, expected_in_dim=32)
    save_checkpoint(path, "backbone", projector, {"in_dim": 16, "out_dim": 4})
    with pytest.raises(UserError, match="holds a 'backbone', expected a 'projector'"):
        load_projector(path, expected_in_dim=16)
