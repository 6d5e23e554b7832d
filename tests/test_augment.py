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
