"""base.precision: which device/precision pairs autocast to bf16, and a bf16 CPU run trains."""

import numpy as np
import pytest
import torch

from gccluster.config import DataConfig, PretrainConfig
from gccluster.data.prepare import prepare_dataset
from gccluster.runtime import autocast, conv_memory_format, seed_everything, use_bf16
from gccluster.train.pretrain import pretrain_simclr

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("device", "precision", "expected"),
    [(CPU, "auto", False), (CUDA, "auto", True), (CPU, "bf16", True), (CPU, "fp32", False), (CUDA, "fp32", False)],
)
def test_use_bf16_table(device, precision, expected):
    assert use_bf16(device, precision) is expected


def test_autocast_dtype_on_cpu():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast(CPU, "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(CPU, "auto"):
        assert layer(x).dtype == torch.float32


def test_memory_format_keeps_default_cpu_runs_contiguous():
    assert conv_memory_format(CPU, "auto") == torch.contiguous_format
    assert conv_memory_format(CPU, "fp32") == torch.contiguous_format
    assert conv_memory_format(CPU, "bf16") == torch.channels_last
    assert conv_memory_format(CUDA, "fp32") == torch.channels_last


def test_bf16_pretraining_on_cpu_learns():
    images = prepare_dataset(DataConfig(), "unused").train.images[:256]
    cfg = PretrainConfig(epochs=6, batch_size=128, width=8)
    result = pretrain_simclr(images, "digits", cfg, CPU, seed_everything(0), precision="bf16")
    losses = np.array(result.epoch_loss)
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]  # NT-Xent falls under bf16 as it does in fp32
    conv = next(m for m in result.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
