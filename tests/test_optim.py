"""Per-epoch loss reading (one host sync per epoch) and the device-dependent optimiser and
random-draw choices."""

import math

import pytest
import torch

from gccluster.errors import NonFiniteLossError
from gccluster.runtime import step_generator
from gccluster.train.optim import EpochLosses, fused_on


def test_epoch_losses_weighted_mean_equals_per_step_sums():
    losses = EpochLosses("stage", 0, "hint")
    values, weights = [0.5, 1.25, 2.0], [128, 128, 44]
    for step, (value, weight) in enumerate(zip(values, weights)):
        losses.add(torch.tensor(value, dtype=torch.float32), step, weight=weight)
    expected = 0.0
    for value, weight in zip(values, weights):
        expected += value * weight
    assert losses.mean() == expected / sum(weights)
    assert EpochLosses("stage", 0, "hint").mean() == 0.0


def test_epoch_losses_name_the_first_non_finite_step_once_read():
    losses = EpochLosses("pretrain", 2, "lower the lr")
    for step, value in enumerate([1.0, 2.0, math.nan, math.inf]):
        losses.add(torch.tensor(value), step)  # adding never stops: nothing is read yet
    with pytest.raises(NonFiniteLossError, match=r"stage pretrain at epoch 3, step 3; lower the lr"):
        losses.mean()
    parts = EpochLosses("pretrain", 2, "lower the lr", check=False)
    parts.add(torch.tensor(math.nan), 0)
    assert math.isnan(parts.mean())


def test_gpu_only_choices_leave_the_cpu_path_as_it_was():
    generator = torch.Generator()
    assert step_generator(generator, torch.device("cpu")) is generator
    # on CUDA: a GPU generator seeded by one draw from the stage's generator (needs a GPU to build)
    assert fused_on("cpu") is None and fused_on(torch.device("cuda")) is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_draws_are_a_function_of_the_consumer_generator():
    cuda = torch.device("cuda")
    first = step_generator(torch.Generator().manual_seed(1), cuda)
    again = step_generator(torch.Generator().manual_seed(1), cuda)
    other = step_generator(torch.Generator().manual_seed(2), cuda)
    draw = lambda g: torch.rand(8, generator=g, device=cuda)  # noqa: E731
    a, b, c = draw(first), draw(again), draw(other)
    assert torch.equal(a, b) and not torch.equal(a, c)
