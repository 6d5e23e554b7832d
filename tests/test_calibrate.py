"""The round's bank: label counts, pairing, and one calibration epoch."""

import numpy as np
import pytest
import torch

from gccluster.config import GCCConfig
from gccluster.models.backbones import SmallCNN
from gccluster.models.heads import ClusterHead
from gccluster.train.calibrate import Bank, BankPairing, bank_label_counts, calibrate_clustering


def test_bank_counts_follow_predicted_distribution_and_sum_exactly():
    predicted = np.array([0] * 50 + [1] * 30 + [2] * 20)
    np.testing.assert_array_equal(bank_label_counts(predicted, 4, 10), [5, 3, 2, 0])
    counts = bank_label_counts(predicted, 4, 7)  # 3.5, 2.1, 1.4 -> 3, 2, 1 + largest remainder
    assert counts.sum() == 7
    np.testing.assert_array_equal(counts, [4, 2, 1, 0])


def test_pairing_draws_only_from_the_requested_clusters():
    bank_labels = torch.tensor([0, 0, 1, 2, 2, 2])
    pairing = BankPairing(bank_labels, 4)
    clusters = torch.tensor([2, 0, 2, 3, 1])  # cluster 3 has no bank images: dropped
    picks = pairing.draw(clusters, torch.Generator().manual_seed(0))
    assert len(picks) == 4
    assert sorted(bank_labels[picks].tolist()) == [0, 1, 2, 2]


def test_one_calibration_epoch_runs_and_reports_finite_parts():
    gen = torch.Generator().manual_seed(0)
    real = (torch.rand(40, 8, 8, 1, generator=gen) * 255).to(torch.uint8).numpy()
    bank = Bank((torch.rand(20, 8, 8, 1, generator=gen) * 255).to(torch.uint8).numpy(),
                np.repeat(np.arange(3), [7, 7, 6]))
    backbone, head = SmallCNN(1, 8, width=4, feature_dim=16), ClusterHead(16, 3, hidden_dim=8)
    before = [p.clone() for p in backbone.parameters()]
    cfg = GCCConfig(cluster_epochs=2, batch_size=16, lr=1e-3)
    history = calibrate_clustering(backbone, head, real, bank, cfg, torch.device("cpu"), gen, "test")
    assert set(history) == {"total", "d", "cwm", "ml"}
    assert all(len(v) == 2 and np.isfinite(v).all() for v in history.values())
    assert history["total"][0] == pytest.approx(history["d"][0] + history["cwm"][0] + history["ml"][0], rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before, backbone.parameters()))
