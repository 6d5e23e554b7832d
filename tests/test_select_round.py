"""Which round is the GCC result (`gcc.select_round`): the stopping rule on held-out agreement,
and how the report names the chosen round."""

import pytest

from gccluster.config import GCCConfig
from gccluster.evaluation import select_round
from gccluster.report import render_report

CHAIN = ["r1", "r2", "r3", "r4"]


@pytest.mark.parametrize("agreement, expected", [
    ((0.90, 0.92, 0.85, 0.95), "r2"),  # stops at the first fall; the later rise is never seen
    ((0.90, 0.89, 0.95, 0.96), "r1"),  # falls right after r1
    ((0.90, 0.90, 0.95, 0.96), "r1"),  # equal is not rising
    ((0.80, 0.85, 0.90, 0.91), "r4"),  # rises throughout: the last round
])
def test_heldout_stop_keeps_the_round_before_agreement_stops_rising(agreement, expected):
    assert select_round(CHAIN, dict(zip(CHAIN, agreement)), "heldout_stop") == expected


def test_the_rule_reads_the_chain_order_not_the_dict_order():
    agreement = {"r3": 0.70, "r1": 0.90, "r2": 0.95}
    assert select_round(["r1", "r2", "r3"], agreement, "heldout_stop") == "r2"
    assert select_round(["r3", "r1", "r2"], agreement, "heldout_stop") == "r2"


def test_one_round_and_the_last_rule():
    assert select_round(["only"], {"only": 0.5}, "heldout_stop") == "only"
    falling = dict(zip(CHAIN, (0.9, 0.8, 0.7, 0.6)))
    assert select_round(CHAIN, falling, "last") == "r4"
    assert select_round(CHAIN, falling, "heldout_stop") == "r1"


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="allowed heldout_stop, last"):
        select_round(CHAIN, dict(zip(CHAIN, (0.9,) * 4)), "best")
    with pytest.raises(ValueError, match="select_round"):
        GCCConfig(select_round="best")
    assert GCCConfig().select_round == "heldout_stop"


def two_round_metrics(chosen: str | None) -> dict:
    rounds = {"r1": {"acc": 0.81, "nmi": 0.71, "ari": 0.61, "heldout_agreement": 0.93, "train_bank_fit": 0.95},
              "r2": {"acc": 0.78, "nmi": 0.68, "ari": 0.58, "heldout_agreement": 0.90, "train_bank_fit": 0.96}}
    final = {k: v for k, v in rounds[chosen or "r2"].items() if k not in ("heldout_agreement", "train_bank_fit")}
    if chosen is not None:
        final["round"] = chosen
    return {"kmeans_pixels": {"acc": 0.2, "nmi": 0.1, "ari": 0.05},
            "pretext_kmeans": {"acc": 0.6, "nmi": 0.5, "ari": 0.4},
            "cluster_head": {"acc": 0.7, "nmi": 0.6, "ari": 0.5}, "rounds": rounds, "final": final}


META = {"dataset": "digits", "n_train": 1437, "n_test": 360, "image_size": 16, "protocol": "train"}
PARAMS = {"pretrain": {"backbone": "small_cnn"}}


def test_the_report_names_the_chosen_round_and_why():
    text = render_report(two_round_metrics("r1"), META, PARAMS, None)
    assert ("| **GCC (result)** | 0.8100 | 0.7100 | 0.6100 |" in text
            and "round r1: held-out agreement stopped rising after it" in text)
    assert "| r1 (the result) | 0.8100 |" in text and "| r2 | 0.7800 |" in text
    last = render_report(two_round_metrics("r2"), META, PARAMS, None)
    assert "| **GCC (result)** | 0.7800 |" in last and "round r2, the last" in last
    assert "| r2 (the result) | 0.7800 |" in last


def test_a_run_written_before_the_rule_reads_as_its_last_round():
    text = render_report(two_round_metrics(None), META, PARAMS, None)
    assert "| **GCC (result)** | 0.7800 |" in text and "the last round |" in text
    assert "(the result)" not in text
