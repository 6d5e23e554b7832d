"""The round's bank: label counts, pairing, and one calibration epoch."""

import numpy as np
import pytest
import torch

from gccluster.config import GCCConfig
from gccluster.errors import ClusterCollapseError
from gccluster.models.backbones import SmallCNN
from gccluster.models.heads import ClusterHead
from gccluster.train.calibrate import Bank, BankPairing, bank_label_counts, calibrate_clustering, check_balance, cluster_balance


def test_bank_counts_follow_predicted_distribution_and_sum_exactly():
    predicted = np.array([0] * 50 + [1] * 30 + [2] * 20)
    np.testing.assert_array_equal(bank_label_counts(predicted, 4, 10), [5, 3, 2, 0])
    counts = bank_label_counts(predicted, 4, 7)  # 3.5, 2.1, 1.4 -> 3, 2, 1 + largest remainder
    assert counts.sum() == 7
    np.testing.assert_array_equal(counts, [4, 2, 1, 0])


def test_cluster_balance_is_normalised_entropy_of_cluster_sizes():
    assert cluster_balance(np.array([5, 5, 5, 5])) == pytest.approx(1.0)
    assert cluster_balance(np.array([0, 12, 0])) == pytest.approx(0.0)
    # sizes 3:1 of K = 2: -(0.75 ln 0.75 + 0.25 ln 0.25) / ln 2
    assert cluster_balance(np.array([3, 1])) == pytest.approx(0.811278, abs=1e-6)
    # an empty cluster still counts in K: sizes 1:1:0 give ln 2 / ln 3
    assert cluster_balance(torch.tensor([4, 4, 0])) == pytest.approx(np.log(2) / np.log(3))


def test_pairing_draws_only_from_the_requested_clusters():
    bank_labels = torch.tensor([0, 0, 1, 2, 2, 2])
    pairing = BankPairing(bank_labels, 4)
    clusters = torch.tensor([2, 0, 2, 3, 1])  # cluster 3 has no bank images: dropped
    picks = pairing.draw(clusters, torch.Generator().manual_seed(0))
    assert len(picks) == 4
    assert sorted(bank_labels[picks].tolist()) == [0, 1, 2, 2]


def test_pairing_draws_without_replacement_where_the_pool_allows():
    bank_labels = torch.tensor([0] * 50 + [1] * 5)
    pairing = BankPairing(bank_labels, 2)
    gen = torch.Generator().manual_seed(0)
    picks = pairing.draw(torch.tensor([0] * 20 + [1] * 8), gen)
    from_zero, from_one = picks[bank_labels[picks] == 0], picks[bank_labels[picks] == 1]
    assert len(from_zero) == 20 and len(set(from_zero.tolist())) == 20  # pool of 50: no repeat
    # Pool of 5 for 8 draws: every member once, then 3 of them a second time.
    assert len(from_one) == 8 and sorted(torch.bincount(from_one - 50).tolist()) == [1, 1, 2, 2, 2]
    uniform = pairing.draw_uniform(40, gen)
    assert len(set(uniform.tolist())) == 40
    assert sorted(torch.bincount(pairing.draw_uniform(60, gen), minlength=55).unique().tolist()) == [1, 2]


def test_uniform_pairing_follows_the_bank_mix_not_the_batch():
    bank_labels = torch.tensor([0] * 30 + [1] * 10)
    pairing = BankPairing(bank_labels, 2)
    gen = torch.Generator().manual_seed(0)
    picks = torch.cat([pairing.draw_uniform(100, gen) for _ in range(40)])
    assert picks.min() >= 0 and picks.max() < 40
    # 3:1 in the bank, so about 75% of the draws are cluster 0 whatever the real batch holds
    assert (bank_labels[picks] == 0).float().mean().item() == pytest.approx(0.75, abs=0.02)


def tiny_round_inputs():
    """A seeded generator, 40 real 8x8 images, a 20-image bank of 3 clusters, and a tiny F and C."""
    gen = torch.Generator().manual_seed(0)
    real = (torch.rand(40, 8, 8, 1, generator=gen) * 255).to(torch.uint8).numpy()
    bank = Bank((torch.rand(20, 8, 8, 1, generator=gen) * 255).to(torch.uint8).numpy(),
                np.repeat(np.arange(3), [7, 7, 6]))
    return gen, real, bank, SmallCNN(1, 8, width=4, feature_dim=16), ClusterHead(16, 3, hidden_dim=8)


@pytest.mark.parametrize("pairing", ["predicted", "bank"])
def test_one_calibration_epoch_runs_and_reports_finite_parts(pairing):
    gen, real, bank, backbone, head = tiny_round_inputs()
    before = [p.clone() for p in backbone.parameters()]
    cfg = GCCConfig(cluster_epochs=2, batch_size=16, lr=1e-3, pairing=pairing, min_balance=0.0)
    history = calibrate_clustering(backbone, head, real, bank, cfg, torch.device("cpu"), gen, "test").history
    assert set(history) == {"total", "d", "cwm", "ml", "balance"}
    assert all(0.0 <= b <= 1.0 for b in history["balance"])
    assert all(len(v) == 2 and np.isfinite(v).all() for v in history.values())
    assert history["total"][0] == pytest.approx(history["d"][0] + history["cwm"][0] + history["ml"][0], rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before, backbone.parameters()))


def test_balance_guard_stops_below_the_threshold_only():
    check_balance(0.5, 0.5, "round@r1", 0)  # at the threshold: fine
    check_balance(0.01, 0.0, "round@r1", 0)  # guard off
    with pytest.raises(ClusterCollapseError, match=r"round@r1 epoch 3 \(cluster balance 0\.120 < gcc\.min_balance 0\.5\)"):
        check_balance(0.12, 0.5, "round@r1", 2)


def test_a_round_whose_head_predicts_one_cluster_stops_with_the_guard():
    gen, real, bank, backbone, head = tiny_round_inputs()
    with torch.no_grad():
        head.mlp[-1].bias.copy_(torch.tensor([1e3, 0.0, 0.0]))  # every image -> cluster 0
    cfg = GCCConfig(cluster_epochs=1, batch_size=16, lr=1e-6, min_balance=0.5)
    with pytest.raises(ClusterCollapseError, match="collapsed in test epoch 1"):
        calibrate_clustering(backbone, head, real, bank, cfg, torch.device("cpu"), gen, "test")
    history = calibrate_clustering(backbone, head, real, bank, cfg.model_copy(update={"min_balance": 0.0}),
                                   torch.device("cpu"), gen, "test").history
    assert history["balance"] == [0.0]


def test_fresh_bank_every_epoch_is_drawn_from_the_training_generator():
    gen, real, bank, backbone, head = tiny_round_inputs()
    drawn = []

    def fresh_bank(generator: torch.Generator) -> Bank:
        images = (torch.rand(20, 8, 8, 1, generator=generator) * 255).to(torch.uint8).numpy()
        drawn.append(images)
        return Bank(images, bank.labels)

    cfg = GCCConfig(cluster_epochs=3, batch_size=16, lr=1e-3, bank_refresh="epoch", min_balance=0.0)
    result = calibrate_clustering(backbone, head, real, fresh_bank, cfg, torch.device("cpu"), gen, "test")
    assert len(drawn) == 3 and len(result.history["total"]) == 3
    assert not np.array_equal(drawn[0], drawn[1]) and not np.array_equal(drawn[1], drawn[2])
    assert result.last_bank.images is drawn[-1]  # bank.npz holds what the last epoch trained on
    fixed = calibrate_clustering(*tiny_round_inputs()[3:], real, bank, cfg, torch.device("cpu"), gen, "test")
    assert fixed.last_bank is bank


def test_an_interrupted_round_with_fresh_banks_redraws_the_same_banks(tmp_path):
    from gccluster.train.resume import EpochCheckpointer

    cfg = GCCConfig(cluster_epochs=3, batch_size=16, lr=1e-3, bank_refresh="epoch", min_balance=0.0)

    def run(stop_after: int | None, checkpointer: EpochCheckpointer | None):
        torch.manual_seed(0)  # the same initial F and C in every run
        gen, real, bank, backbone, head = tiny_round_inputs()
        drawn = []

        def fresh_bank(generator):
            if stop_after is not None and len(drawn) == stop_after:
                raise KeyboardInterrupt  # the machine went away before this epoch
            images = (torch.rand(20, 8, 8, 1, generator=generator) * 255).to(torch.uint8).numpy()
            drawn.append(images)
            return Bank(images, bank.labels)

        result = calibrate_clustering(backbone, head, real, fresh_bank, cfg, torch.device("cpu"), gen, "test",
                                      checkpointer)
        return drawn, result, backbone

    straight, straight_result, straight_backbone = run(None, None)
    checkpointer = EpochCheckpointer("r1-cluster", {"gcc": cfg.model_dump()}, root=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run(2, checkpointer)
    resumed, resumed_result, resumed_backbone = run(None, checkpointer)
    assert len(resumed) == 1  # epochs 1-2 restored, only epoch 3 drawn
    np.testing.assert_array_equal(resumed[0], straight[2])
    assert resumed_result.history == straight_result.history
    for a, b in zip(straight_backbone.parameters(), resumed_backbone.parameters()):
        torch.testing.assert_close(a, b)
