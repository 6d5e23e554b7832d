"""Data parallel training (gccluster.distributed): N processes with shards of a global
batch give the loss and the gradients of one process with the whole batch.

Each case runs in 2 gloo processes on the CPU (torch.multiprocessing) and in this process
alone, with the same small model and data; the ranks' losses and DDP-averaged gradients
(and, with BatchNorm, whose statistics are then synchronised over the ranks, its running
statistics) must equal the single process's to float tolerance.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gccluster import distributed
from gccluster.baselines.drc.losses import (
    assignment_feature_loss,
    assignment_probability_loss,
    cluster_regularisation_loss,
    drc_objective,
)
from gccluster.baselines.dccs.losses import (
    DCCSWeights,
    augmentation_invariance_loss,
    encoder_adversarial_loss,
    encoder_objective,
    mutual_information_loss,
)
from gccluster.baselines.dccs.model import DCCSDiscriminator, latent_code
from gccluster.baselines.drc.method import gather_repeated
from gccluster.baselines.gatcluster.losses import (
    entropy_loss,
    gatcluster_objective,
    separability_loss,
    transformation_invariance_loss,
)
from gccluster.baselines.precise.losses import critic_loss as precise_critic_loss
from gccluster.losses.calibration import (
    CalibrationWeights,
    cluster_wise_matching,
    gcc_objective,
    median_bandwidth,
    mmd_per_cluster,
    reliable_metric_loss,
)
from gccluster.losses.contrastive import nt_xent

WORLD = 2
pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")


def _model(batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    norm = [nn.BatchNorm1d(16)] if batchnorm else []
    return nn.Sequential(nn.Linear(12, 16), *norm, nn.Tanh(), nn.Linear(16, 6)).double()


def _data(n: int = 10) -> torch.Tensor:
    return torch.randn(n, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


# Each case: (global rows) -> loss, computed from this rank's rows through `embed`
# (the DDP-wrapped model) and `distributed.gather`. Alone, the same code sees every row.


def _nt_xent_case(embed, x: torch.Tensor) -> torch.Tensor:
    rows = distributed.shard(torch.arange(len(x)))
    view_a, view_b = x[rows], x[rows].flip(1)  # two fixed "views"
    z = embed(torch.cat([view_a, view_b]))
    return nt_xent(distributed.gather(z[: len(rows)]), distributed.gather(z[len(rows):]), 0.5)


def _gcc_case(embed, x: torch.Tensor) -> torch.Tensor:
    # Real rows 0..6 with predicted clusters, generated rows 7..9 with their labels: unequal
    # shards on both sides (4 + 3 real, 2 + 1 generated).
    real, fake = torch.arange(7), torch.arange(7, 10)
    predicted, fake_clusters = torch.tensor([0, 1, 2, 0, 1, 2, 0]), torch.tensor([0, 1, 2])
    mine_real, mine_fake = distributed.shard(real), distributed.shard(fake)
    out = embed(torch.cat([x[mine_real], x[mine_fake]]))
    f_real, f_fake = distributed.gather(out[: len(mine_real)]), distributed.gather(out[len(mine_real):])
    scores = torch.softmax(f_fake[:, :3], dim=1)
    bandwidth = median_bandwidth(torch.cat([f_real, f_fake]))
    parts = {"d": mmd_per_cluster(f_real, predicted, f_fake, fake_clusters, bandwidth, "unbiased"),
             "cwm": cluster_wise_matching(f_fake, fake_clusters),
             "ml": reliable_metric_loss(scores, fake_clusters)}
    return gcc_objective(parts, CalibrationWeights())


def _drc_case(embed, x: torch.Tensor) -> torch.Tensor:
    rows = distributed.shard(torch.arange(len(x)))
    originals = x[rows]
    views = (originals.repeat(2, 1) * torch.linspace(0.9, 1.1, 12, dtype=x.dtype))  # [1..n, 1..n]
    logits = distributed.gather(embed(originals))
    augmented = gather_repeated(embed(views), 2)
    repeated = logits.repeat(2, 1)
    p, q = torch.softmax(repeated, dim=1), torch.softmax(augmented, dim=1)
    af = assignment_feature_loss(repeated, augmented, 0.5, "cosine")
    ap = assignment_probability_loss(p, q, 0.95, "cosine")
    cr = cluster_regularisation_loss(torch.softmax(logits, dim=1))
    return drc_objective(af, ap, cr, 0.005, 1.0, 1.0)


def _per_image_mean_case(embed, x: torch.Tensor) -> torch.Tensor:
    # Eq. 6's form: a mean over images, shards of 5 and 4 of a 9-image batch.
    batch = torch.arange(9)
    rows = distributed.shard(batch)
    local = (embed(x[rows]) ** 2).mean()
    return local * distributed.share(len(rows), len(batch))


def _dccs_encoder_case(embed, x: torch.Tensor) -> torch.Tensor:
    # Eq. 12-13 as the DCCS step runs them: the encoder's outputs gathered, MI's negatives a
    # permutation of the global batch, L_Aug on clean and augmented logits, L_Adv through C.
    rows = distributed.shard(torch.arange(len(x)))
    out, out_aug = embed(x[rows]), embed(x[rows] * 0.9)
    logits, z = distributed.gather(out[:, :3]), distributed.gather(latent_code(out[:, 3:], out[:, :3]))
    features, augmented = distributed.gather(out), distributed.gather(out_aug[:, :3])
    torch.manual_seed(5)
    # latent_code is float32 (as DCCS's code): the critic too, hence a float32 tolerance.
    discriminator, critic = DCCSDiscriminator(6, 6).double(), nn.Linear(6, 1)
    mi = mutual_information_loss(discriminator, features, z, torch.roll(torch.arange(len(x)), 3))
    adv = encoder_adversarial_loss(critic(z))
    return encoder_objective(DCCSWeights(mi=0.5, aug=1.0, adv=1.0), mi,
                             augmentation_invariance_loss(logits, augmented), adv)


def _gatcluster_case(embed, x: torch.Tensor) -> torch.Tensor:
    # Eq. 3's parts on a sub-batch with fixed targets: L_E's batch mean, L_R's pairs, L_T.
    rows = torch.tensor([7, 2, 9, 0, 4, 5, 1])  # a sub-batch of the big batch, shards of 4 + 3
    label_features = distributed.gather(torch.softmax(embed(x[distributed.shard(rows)]), dim=1))
    targets = torch.softmax(x[:, :6] * 3, dim=1)
    relations = (torch.arange(len(x))[:, None] % 3 == torch.arange(len(x))[None, :] % 3).double()
    parts = {"e": entropy_loss(label_features), "t": transformation_invariance_loss(label_features, targets[rows]),
             "r": separability_loss(label_features, relations[rows][:, rows])}
    return gatcluster_objective(parts, (5.0, 3.0, 5.0))


def _precise_critic_case(embed, x: torch.Tensor) -> torch.Tensor:
    # Eq. 5 on shards of 5 + 4 real and generated images, weighted as the precise-feature
    # step weights it. The penalty's points x̂ are random per rank, so it is taken where
    # they do not matter (generated = real: x̂ = x), which keeps its double backward.
    batch = torch.arange(9)
    rows = distributed.shard(batch)
    real, fake = x[rows].reshape(-1, 1, 3, 4), x[rows].flip(1).reshape(-1, 1, 3, 4)
    critic = lambda images: embed(images.flatten(1))[:, :1]  # noqa: E731
    wasserstein, _, _ = precise_critic_loss(critic, real, fake, 0.0)
    penalty, _, _ = precise_critic_loss(critic, real, real, 100.0)
    return (wasserstein + penalty) * distributed.share(len(rows), len(batch))


CASES = {"nt_xent": _nt_xent_case, "nt_xent_batchnorm": _nt_xent_case, "gcc": _gcc_case, "drc": _drc_case, "per_image_mean": _per_image_mean_case,
         "dccs_encoder": _dccs_encoder_case, "gatcluster": _gatcluster_case, "precise_critic": _precise_critic_case}
# DCCS and the precise-feature method average gradients by all-reduce after backward (their
# adversarial steps do not fit DDP's wrapper); the others train through DDP.
ALL_REDUCE = {"dccs_encoder", "precise_critic"}
# DCCS runs through float32 codes, the critics score in float32; the others are float64.
RELATIVE_TOLERANCE = {"dccs_encoder": 1e-5, "precise_critic": 1e-5}


def _loss_and_grads(case: str) -> tuple[float, list[torch.Tensor]]:
    """The loss and the gradients, then (with BatchNorm) the running statistics after the step."""
    model = _model(batchnorm=case.endswith("_batchnorm"))
    if case in ALL_REDUCE:
        embed = model
    else:
        embed = distributed.data_parallel(model, lambda m, x: m(x), torch.device("cpu"))
    loss = CASES[case](embed, _data())
    loss.backward()
    if case in ALL_REDUCE:
        distributed.average_gradients(torch.optim.SGD(model.parameters(), lr=0.0))
    # Gathered losses are equal on every rank; weighted local means average to the global one.
    value = float(distributed.all_sum(loss.detach()) / distributed.world().size)
    return value, [p.grad.clone() for p in model.parameters()] + [b.clone() for b in model.buffers()]


def _streams() -> dict[str, torch.Tensor]:
    """What `rank_generator` gives this rank: its stream's first draws, the global RNG's
    (the augmentations'), and the shared generator's next draws."""
    shared = torch.Generator().manual_seed(11)
    mine = distributed.rank_generator(shared)
    return {"stream": torch.rand(8, generator=mine), "global": torch.rand(8),
            "shared": torch.rand(4, generator=shared)}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        results = {case: _loss_and_grads(case) for case in CASES}
        results["streams"] = _streams()
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_match_one(two_ranks, case):
    alone_loss, alone_grads = _loss_and_grads(case)
    rtol = RELATIVE_TOLERANCE.get(case, 1e-9)
    for rank in range(WORLD):
        loss, grads = two_ranks[rank][case]
        assert loss == pytest.approx(alone_loss, rel=rtol, abs=1e-12), f"rank {rank}"
        assert len(grads) == len(alone_grads)
        for got, want in zip(grads, alone_grads):
            torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * 1e-3)


def test_rank_streams_differ_from_each_other_and_from_the_global_rng(two_ranks):
    """Per-rank draws must not repeat across ranks, nor between a rank's stream and the
    augmentations' global RNG (seeded alike they restarted the same numbers every epoch);
    the shared generator stays in step on every rank."""
    first, second = (two_ranks[rank]["streams"] for rank in range(WORLD))
    for streams in (first, second):
        assert not torch.equal(streams["stream"], streams["global"])
    assert not torch.equal(first["stream"], second["stream"])
    assert not torch.equal(first["global"], second["global"])
    assert torch.equal(first["shared"], second["shared"])


def test_per_rank_losses_are_not_the_global_one_without_gather(two_ranks):
    """The test can fail: NT-Xent on each rank's own rows (local negatives, the
    Contrastive-Clustering multi-GPU bug) is another objective, with other gradients."""
    model = _model()
    x = _data()
    z = model(torch.cat([x[:5], x[:5].flip(1)]))
    local = nt_xent(z[:5], z[5:], 0.5)
    alone_loss, _ = _loss_and_grads("nt_xent")
    assert abs(float(local.detach()) - alone_loss) > 1e-3


# DCCS's whole training loop (batch order and shards, synchronised BatchNorm, gathered codes,
# averaged gradients, the stopping check) under 2 processes against one. Per-rank random
# streams make the two runs differ by design, so the workers draw every random number as one
# process does (the shared stream, for the global batch, each rank then taking its shard):
# what is left is the data-parallel arithmetic, which must give one process's weights.


def _dccs_config():
    from gccluster.baselines.dccs.params import DCCSConfig

    # 31 rows: shards of 16 and 15, so the critic's per-image means need their shares.
    return DCCSConfig(batch_size=31, max_encoder_steps=3, check_every=1)


def _dccs_with_one_process_draws() -> None:
    """In a worker: DCCS's draws made as one process makes them (test-only patches)."""
    from gccluster.baselines.dccs import method

    from gccluster.baselines.dccs import losses

    method.rank_generator = lambda generator, device=None: generator  # the shared stream only

    def global_count(rows: int) -> int:
        return int(distributed.all_sum(torch.tensor(rows)))

    prior = method.sample_prior  # the global batch's prior codes; this rank keeps its rows
    method.sample_prior = lambda rows, *args: distributed.local_rows(prior(global_count(rows), *args))
    # Eq. 11's penalty on the global batch's pairs (its random points drawn as one process
    # draws them): the same on every rank, so the share-weighted mean over ranks is itself.
    penalty = losses.gradient_penalty
    losses.gradient_penalty = lambda critic, real, fake, generator=None: penalty(
        critic, distributed.gather(real), distributed.gather(fake), generator)
    views = method.FusedViews, method.kornia_views

    class GlobalViews(nn.Module):  # the whole batch's views from the (in-step) global RNG
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return distributed.local_rows(self.inner(distributed.gather(x)))

    method.FusedViews = lambda spec: GlobalViews(views[0](spec))
    method.kornia_views = lambda spec, size: GlobalViews(views[1](spec, size))


def _train_dccs() -> dict:
    """The trained clusterer's state, its state at initialisation, and the run's summary."""
    from baseline_helpers import images, request
    from gccluster.baselines.dccs import method

    built, clusterer = [], method.DCCSClusterer

    def build(**arch):
        model = clusterer(**arch)
        built.append({name: value.clone() for name, value in model.state_dict().items()})
        return model

    method.DCCSClusterer = build
    try:
        result = method.train(request(_dccs_config(), images(64)))
    finally:
        method.DCCSClusterer = clusterer
    return {"state": result.model.state_dict(), "init": built[0], "summary": result.summary}


def _dccs_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    sys.path.insert(0, str(Path(__file__).parent))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        _dccs_with_one_process_draws()
        torch.save(_train_dccs(), Path(out) / f"dccs{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_dccs_training_under_two_processes_matches_one(tmp_path):
    mp.spawn(_dccs_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"dccs{r}.pt") for r in range(WORLD)]
    alone = _train_dccs()
    assert alone["summary"]["encoder_steps"] == 3 and alone["summary"]["critic_steps"] == 12
    for rank in ranks:
        assert rank["summary"]["encoder_steps"] == 3
        # 1e-3: float-level differences of the 2-process reductions, grown by three Adam
        # steps and then rounded to 5 decimals (measured 1.2e-4 on a 2-core Intel Xeon,
        # family 6 model 207; below 1e-4 on an AMD EPYC).
        assert rank["summary"]["wasserstein_checks"] == pytest.approx(alone["summary"]["wasserstein_checks"],
                                                                      rel=1e-3)
    # Adam turns float-level noise in a near-zero gradient into a full step of either sign
    # (measured: 1-3 % of the weights, a relative error of 1e-3 in the update), so the test
    # compares what 15 steps changed: ranks bit for bit, two processes with one to 1 %.
    for name, want in alone["state"].items():
        got = ranks[0]["state"][name]
        assert torch.equal(got, ranks[1]["state"][name]), name  # ranks stay in step
        if not want.is_floating_point():
            assert torch.equal(got, want), name
            continue
        assert torch.equal(ranks[0]["init"][name], alone["init"][name]), name
        update, want_update = got - alone["init"][name], want - alone["init"][name]
        assert want_update.norm() > 0, name
        assert float((update - want_update).norm() / want_update.norm()) < 1e-2, name


def test_alone_helpers_are_identity():
    x = torch.arange(6.0).reshape(3, 2)
    assert distributed.world() == distributed.World()
    assert distributed.gather(x) is x
    assert distributed.local_rows(x) is x
    assert torch.equal(distributed.shard(torch.arange(5)), torch.arange(5))
    assert distributed.share(3, 7) == 1.0
    generator = torch.Generator().manual_seed(3)
    assert distributed.rank_generator(generator) is generator


def test_torchrun_arguments_single_and_multi_node(monkeypatch):
    monkeypatch.delenv("PET_NNODES", raising=False)
    assert distributed.torchrun_arguments(2, "stages/pretrain.py", ["--params", "p.yaml"]) == [
        "--standalone", "--nproc-per-node=2", "stages/pretrain.py", "--params", "p.yaml"]
    monkeypatch.setenv("PET_NNODES", "2")
    assert distributed.torchrun_arguments(4, "stages/round.py", ["r1"]) == [
        "--nproc-per-node=4", "stages/round.py", "r1"]


# The real stages under torchrun (gloo, 2 CPU processes), from DVC as a user runs them.


@pytest.mark.e2e
def test_tiny_pipeline_under_two_processes(project):
    from conftest import run, set_params

    set_params(project, {"base": {"nproc": 2}})
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "tiny"], project)
    run(["dvc", "repro"], project)
    metrics = json.loads((project / "results" / "metrics.json").read_text())
    assert set(metrics["rounds"]) == {"r1", "r2"} and 0.0 <= metrics["final"]["acc"] <= 1.0
    # The curves were written once, by the first worker, with one row per epoch.
    assert len((project / "results" / "pretrain" / "loss.csv").read_text().splitlines()) == 1 + 2
    assert len((project / "results" / "r1" / "cluster_loss.csv").read_text().splitlines()) == 1 + 1
    for name in ("dccs", "drc", "gatcluster", "precise"):
        scores = json.loads((project / "results" / "baselines" / name / "metrics.json").read_text())
        assert 0.0 <= scores["acc"] <= 1.0, name
    bank = np.load(project / "results" / "r1" / "bank.npz")
    assert len(bank["images"]) == len(bank["labels"]) == 20  # the ranks' halves of the bank, joined
    assert not (project / ".scratch").exists()
    assert run(["dvc", "status"], project).stdout.strip() == "Data and pipelines are up to date."


@pytest.mark.e2e
def test_a_bad_batch_for_the_processes_stops_with_one_line(project):
    from conftest import run, set_params

    set_params(project, {"base": {"nproc": 2}, "pretrain": {"batch_size": 3}})
    run([sys.executable, "stages/data.py"], project)
    result = run([sys.executable, "stages/pretrain.py"], project, check=False)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == ["pretrain: error: pretrain.batch_size = 3 gives some of the 2 processes (base.nproc x nodes) "
                      "fewer than 2 images per step (allowed: >= 4)"], result.stderr
    assert not (project / "results" / "pretrain").exists()


@pytest.mark.e2e
def test_two_process_pretrain_killed_and_resumed_ends_as_uninterrupted(tmp_path):
    """Resume under DDP: the first worker saves the state; after a SIGKILL of the whole run
    every worker restores it and rederives its own random streams, so the result is the
    uninterrupted two-process run's, bit for bit."""
    import copy
    import signal
    import subprocess
    import time

    from conftest import ROOT, TINY_OVERRIDES, run, stage_env
    from gccluster.scratch_project import copy_pipeline, deep_update

    overrides = deep_update(copy.deepcopy(TINY_OVERRIDES), {"base": {"nproc": 2}, "pretrain": {"epochs": 8}})

    def project(name):
        path = copy_pipeline(ROOT, tmp_path / name, overrides)
        run([sys.executable, "stages/data.py"], path)
        return path

    def weights(path):
        return torch.load(path / "results" / "pretrain" / "backbone.pt", weights_only=False)["state"]

    reference = project("reference")
    run([sys.executable, "stages/pretrain.py"], reference)

    killed = project("killed")
    state = killed / ".scratch" / "pretrain" / "state.pt"
    proc = subprocess.Popen([sys.executable, "stages/pretrain.py"], cwd=killed, env=stage_env(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert state.exists(), "pretrain never saved an epoch state"
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its torchrun workers
    proc.wait()
    assert not (killed / "results" / "pretrain" / "backbone.pt").exists()

    resumed = run([sys.executable, "stages/pretrain.py"], killed)
    assert resumed.stdout.count("pretrain: resuming after epoch") == 1  # said once, by the first worker
    want, got = weights(reference), weights(killed)
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)
