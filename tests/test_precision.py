"""base.precision: which device/precision pairs autocast to bf16, and a bf16 CPU run trains."""

import numpy as np
import pytest
import torch

from gccluster.config import DataConfig, PretrainConfig
from gccluster.data.prepare import prepare_dataset
from gccluster import machine, runtime
from gccluster.runtime import autocast, conv_memory_format, seed_everything, use_bf16
from gccluster.train.pretrain import pretrain_simclr

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(params=[False, True], ids=["cpu_without_native_bf16", "cpu_with_native_bf16"])
def native_bf16(request, monkeypatch):
    """Run a test as on a CPU without, then with, native bf16 (whatever this machine has)."""
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: request.param)
    return request.param


@pytest.mark.parametrize(
    ("device", "precision", "expected"),
    [(CUDA, "auto", True), (CPU, "bf16", True), (CPU, "fp32", False), (CUDA, "fp32", False)],
)
def test_use_bf16_table(native_bf16, device, precision, expected):
    assert use_bf16(device, precision) is expected


def test_auto_is_bf16_exactly_on_cpus_with_native_bf16(native_bf16):
    assert use_bf16(CPU, "auto") is native_bf16
    assert conv_memory_format(CPU, "auto") == (torch.channels_last if native_bf16 else torch.contiguous_format)


def test_autocast_dtype_on_cpu(native_bf16):
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast(CPU, "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert layer(x).dtype == torch.float32
    with autocast(CPU, "auto"):
        assert layer(x).dtype == (torch.bfloat16 if native_bf16 else torch.float32)


def test_memory_format_keeps_fp32_cpu_runs_contiguous():
    assert conv_memory_format(CPU, "fp32") == torch.contiguous_format
    assert conv_memory_format(CPU, "bf16") == torch.channels_last
    assert conv_memory_format(CUDA, "fp32") == torch.channels_last


@pytest.mark.parametrize(("flags", "expected"), [
    ("flags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n", True),  # Xeon with AMX
    ("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n", True),  # AVX512-BF16 alone (Zen 4)
    ("flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n", False),  # AVX-512 without bf16 (Ice Lake)
    ("flags\t\t: fpu sse2 avx2 fma\n", False),  # AVX2 only (Zen 3)
    ("model name\t: amx_bf16 in a name is not a flag\nflags\t\t: fpu avx2\n", False),
])
def test_cpu_has_native_bf16_reads_the_flags_line(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\n" + flags)
    assert machine.cpu_has_native_bf16.__wrapped__(str(cpuinfo)) is expected


def test_cpu_has_native_bf16_is_false_without_cpuinfo(tmp_path):
    assert machine.cpu_has_native_bf16.__wrapped__(str(tmp_path / "missing")) is False


def test_bf16_pretraining_on_cpu_learns():
    images = prepare_dataset(DataConfig(), "unused").train.images[:256]
    cfg = PretrainConfig(epochs=6, batch_size=128, width=8)
    result = pretrain_simclr(images, "digits", cfg, CPU, seed_everything(0), precision="bf16")
    losses = np.array(result.epoch_loss)
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]  # NT-Xent falls under bf16 as it does in fp32
    conv = next(m for m in result.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_features_follow_the_runs_precision(native_bf16):
    """extract_features (pseudo labels, banks' label mix, metrics) autocasts as the run's
    `base.precision` says: fp32 is fp32 on a bf16 CPU too, bf16 is bf16 on any CPU."""
    from gccluster.features import extract_features

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 1), dtype=np.uint8)
    exact = extract_features(model, images, CPU, precision="fp32")
    with torch.no_grad():
        reference = model(runtime.to_model_input(runtime.images_to_tensor(images, CPU))).numpy()
    np.testing.assert_array_equal(exact, reference)
    rounded = extract_features(model, images, CPU, precision="bf16")
    assert rounded.dtype == np.float32 and not np.array_equal(rounded, exact)
    np.testing.assert_allclose(rounded, exact, atol=0.05)
    auto = extract_features(model, images, CPU, precision="auto")
    np.testing.assert_array_equal(auto, rounded if native_bf16 else exact)


@pytest.mark.parametrize("lscpu, expected", [
    ("Vendor ID:  AuthenticAMD\nModel name:   AMD EPYC\nCPU family:   25\nModel:   17\nStepping:  1\n",
     "AMD EPYC (family 25, model 17)"),  # Zen 4
    ("Model name:   AMD EPYC\nCPU family:   23\nModel:   1\n", "AMD EPYC (family 23, model 1)"),  # Zen 1
    ("Model name:   Some CPU\n", "Some CPU"),
])
def test_cpu_name_tells_generations_that_share_a_model_name(lscpu, expected):
    assert machine.cpu_name(lscpu) == expected
