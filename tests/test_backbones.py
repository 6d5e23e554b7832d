"""Feature extractors: readouts of the small CNN and the two ResNet-18 stems."""

import pytest
import torch

from gccluster.models.backbones import build_backbone


@pytest.mark.parametrize("readout,inputs", [("flatten", 16 * 4 * 4), ("pool", 16)])
def test_small_cnn_readouts(readout, inputs):
    net = build_backbone("small_cnn", in_channels=1, image_size=16, width=4, readout=readout).eval()
    linear = next(m for m in net.fc if isinstance(m, torch.nn.Linear))
    assert linear.in_features == inputs  # 4w channels, times 4x4 positions when flattened
    assert net(torch.randn(3, 1, 16, 16)).shape == (3, net.feature_dim)


def test_readouts_against_a_hand_written_head():
    """pool: the linear layer sees each channel's mean over positions; flatten: every position."""
    torch.manual_seed(0)
    x = torch.randn(5, 1, 16, 16)
    for readout in ("pool", "flatten"):
        net = build_backbone("small_cnn", in_channels=1, image_size=16, width=4, readout=readout).eval()
        linear, norm = (next(m for m in net.fc if isinstance(m, kind)) for kind in (torch.nn.Linear, torch.nn.BatchNorm1d))
        with torch.no_grad():
            fmap = net.conv(x)
            summary = fmap.mean(dim=(2, 3)) if readout == "pool" else fmap.reshape(len(x), -1)
            torch.testing.assert_close(net(x), torch.relu(norm(linear(summary))))


def test_old_checkpoint_arch_without_readout_rebuilds_flatten():
    net = build_backbone(name="small_cnn", in_channels=1, image_size=16, width=4)
    assert next(m for m in net.fc if isinstance(m, torch.nn.Linear)).in_features == 16 * 4 * 4


def test_resnet18_stems():
    cifar = build_backbone("resnet18", in_channels=3, image_size=32, width=64)
    standard = build_backbone("resnet18_imagenet_stem", in_channels=3, image_size=96, width=64)
    assert cifar.net.conv1.kernel_size == (3, 3) and cifar.net.conv1.stride == (1, 1)
    assert isinstance(cifar.net.maxpool, torch.nn.Identity)
    assert standard.net.conv1.kernel_size == (7, 7) and standard.net.conv1.stride == (2, 2)
    assert isinstance(standard.net.maxpool, torch.nn.MaxPool2d)
    gray = build_backbone("resnet18_imagenet_stem", in_channels=1, image_size=96, width=64)
    assert gray.net.conv1.in_channels == 1
    with torch.no_grad():
        assert standard.eval()(torch.randn(2, 3, 96, 96)).shape == (2, 512)

