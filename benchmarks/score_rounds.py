"""Score the rounds a project has finished so far, without `evaluate` (which needs the whole
chain up to `gcc.final_round`): for a chain of rounds that runs across sessions, as the
Fashion-MNIST round-seed chains of issue 11 do on a CPU.

For each finished round (its checkpoints, bank and held-out samples present), in chain
order and stopping at the first missing one: test ACC/NMI/ARI, balance and silhouette of
C(F(x)) (the pipeline's own `evaluation.round_metrics`, so the numbers equal what
`evaluate` writes), the held-out agreement and the train-bank fit. Then what
`gcc.select_round` can already say from the held-out agreements alone (no label): the
result when the rule has stopped within the finished rounds, else which round must run next.

    cd PROJECT && python /path/to/benchmarks/score_rounds.py [--out results/rounds_so_far.json]
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gccluster import paths
from gccluster.config import load_params, round_chain
from gccluster.data.prepare import load_prepared
from gccluster.evaluation import round_metrics, select_round
from gccluster.io import write_json
from gccluster.runtime import resolve_device, seed_everything


def finished_rounds(chain: list[str]) -> list[str]:
    """The leading rounds of `chain` whose outputs are all on disk (a chain runs in order)."""
    done = []
    for name in chain:
        files = paths.RoundPaths(name)
        if not all(Path(p).is_file() for p in (files.backbone, files.cluster_head, files.bank, files.samples)):
            break
        done.append(name)
    return done


def rule_so_far(chain: list[str], finished: list[str], heldout: dict[str, float], rule: str) -> dict:
    """What `evaluation.select_round` decides from the finished rounds alone: `heldout_stop`
    is decided once some round's successor is not higher, any rule once the chain is
    complete; otherwise the next round of the chain must run. On the finished rounds,
    `heldout_stop` returns an earlier round than the last only when it saw such a fall."""
    result = select_round(finished, heldout, rule)
    if finished == chain or (rule == "heldout_stop" and result != finished[-1]):
        return {"decided": True, "result": result}
    return {"decided": False, "next_round": chain[len(finished)]}


def main(out: Path = typer.Option(Path("results/rounds_so_far.json"), "--out")) -> None:
    params = load_params(paths.PARAMS)
    chain = round_chain(params.gcc.rounds)
    finished = finished_rounds(chain)
    if not finished:
        raise SystemExit(f"score_rounds: no finished round of the chain {chain} in {Path.cwd()}")
    seed_everything(params.base.seed)
    data = load_prepared(paths.PREPARED_DIR)
    scores = round_metrics(data, finished, resolve_device(params.base.device), params.evaluate.batch_size,
                           params.base.seed, precision=params.base.precision)
    heldout = {name: scores[name]["heldout_agreement"] for name in finished}
    report = {"chain": chain, "finished": finished, "rounds": scores,
              "select_round": {"rule": params.gcc.select_round,
                               **rule_so_far(chain, finished, heldout, params.gcc.select_round)}}
    write_json(out, report)
    for name in finished:
        print(f"{name:>8}: " + "  ".join(f"{k}={v:.4f}" for k, v in scores[name].items() if isinstance(v, float)))
    print(json.dumps(report["select_round"]))


if __name__ == "__main__":
    typer.run(main)
