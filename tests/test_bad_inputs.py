"""Bad inputs stop a stage with exit code 2 and one line naming what is wrong and what is
allowed, and leave every declared output as it was. Stages run in-process (typer's
CliRunner) to keep the battery fast; test_stage_errors.py runs a few as real processes."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY_OVERRIDES, invoke, run_stages_in_process, set_params
from formats import write_mnist_family
from gccluster.scratch_project import copy_pipeline


def snapshot(project: Path) -> dict[str, str]:
    """Hash of every file under data/ and results/ (where all declared outputs live)."""
    return {
        p.relative_to(project).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in ("data", "results")
        for p in sorted((project / folder).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A project where data, pretrain and pseudolabel have run (tiny), shared by the battery."""
    project = copy_pipeline(ROOT, tmp_path_factory.mktemp("bad") / "project", TINY_OVERRIDES)
    run_stages_in_process(project, ("data", "pretrain", "pseudolabel"))
    return project


@pytest.fixture
def project(prepared, tmp_path, monkeypatch):
    copy = tmp_path / "project"
    shutil.copytree(prepared, copy)
    monkeypatch.chdir(copy)
    return copy


def corrupt_head_dim(project):
    """A cluster head saved for 7-d features: does not fit the backbone."""
    from gccluster.checkpoints import save_checkpoint
    from gccluster.models.heads import ClusterHead

    head = ClusterHead(7, 10, 32)
    save_checkpoint(project / "results/pseudolabel/cluster_head.pt", "cluster_head", head,
                    {"in_dim": 7, "n_clusters": 10, "hidden_dim": 32})


def truncated_fashion(project):
    folder = project / "fm"
    write_mnist_family(folder, compress=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    return str(folder)


def image_folder(project, files: dict[str, bytes], **data) -> dict:
    """Params for a folder of the given files under the project (data.dataset image_folder)."""
    root = project / "images"
    root.mkdir()
    for name, payload in files.items():
        (root / name).write_bytes(payload)
    return {"data": {"dataset": "image_folder", "local_dir": str(root), "image_size": 16, "channels": 1,
                     "protocol": "train+test", **data}}


def png(value: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def prepared_folder_of_five(project) -> dict:
    """Five images, prepared for K = 2; then K = 10 (changed after the data stage ran)."""
    set_params(project, {**image_folder(project, {f"{i}.png": png(i) for i in range(5)}),
                         "pseudolabel": {"n_clusters": 2}})
    result = invoke("data")
    assert result.exit_code == 0, result.output
    return {"pseudolabel": {"n_clusters": 10}}


CASES = [
    # (id, stage, params overrides or setup, expected message fragment)
    ("unknown-dataset", "data", {"data": {"dataset": "imagenet"}},
     "params.yaml: data.dataset = 'imagenet': Input should be 'digits', 'mnist', 'fashion_mnist', 'cifar10', 'cifar100_20', 'stl10' or 'image_folder'"),
    ("negative-epochs", "pretrain", {"pretrain": {"epochs": -1}},
     "params.yaml: pretrain.epochs = -1: Input should be greater than or equal to 1"),
    ("wrong-type", "pretrain", {"pretrain": {"batch_size": "big"}},
     "params.yaml: pretrain.batch_size = 'big': Input should be a valid integer"),
    ("unknown-key", "pseudolabel", {"pseudolabel": {"epoch": 3}},
     "params.yaml: unknown key pseudolabel.epoch (allowed in pseudolabel: n_clusters,"),
    ("bad-device", "pretrain", {"base": {"device": "tpu"}},
     "params.yaml: base.device = 'tpu': Input should be 'auto', 'cpu' or 'cuda'"),
    ("zero-processes", "pretrain", {"base": {"nproc": 0}},
     "params.yaml: base.nproc = 0: Input should be greater than or equal to 1"),
    ("zero-temperature", "pretrain", {"pretrain": {"temperature": 0}},
     "params.yaml: pretrain.temperature = 0: Input should be greater than 0"),
    ("image-size-vs-backbone", "data", {"data": {"image_size": 15}},
     "params.yaml: data.image_size = 15 (data.dataset digits) does not suit pretrain.backbone = small_cnn"),
    ("bank-smaller-than-k", "diffusion", {"gcc": {"bank_size": 3}},
     "params.yaml: gcc.bank_size (3) must be at least pseudolabel.n_clusters (10)"),
    ("unknown-sampler", "diffusion", {"diffusion": {"sampler": "euler"}},
     "params.yaml: diffusion.sampler = 'euler': Input should be 'ddim' or 'ddpm'"),
    ("test-fraction", "data", {"data": {"test_fraction": 1.5}},
     "params.yaml: data.test_fraction = 1.5: Input should be less than 1"),
    ("broken-round-chain", "evaluate", {"gcc": {"final_round": "r1"}},
     "params.yaml: gcc.final_round = 'r1': must be the last round of the chain, 'r2'"),
    ("missing-local-dir", "data", {"data": {"dataset": "cifar10", "local_dir": "/nonexistent/cifar"}},
     "data.local_dir = '/nonexistent/cifar': folder does not exist"),
    ("empty-local-dir", "data", lambda p: (p / "empty").mkdir() or {"data": {"dataset": "stl10", "local_dir": str(p / "empty")}},
     "no stl10 files (looked for train_X.bin in"),
    ("truncated-idx", "data", lambda p: {"data": {"dataset": "fashion_mnist", "local_dir": truncated_fashion(p), "image_size": None}},
     "truncated or corrupt IDX file"),
    # An image folder (gccluster.data.folder; the files it skips are tested in test_image_folder.py).
    ("empty-image-folder", "data", lambda p: image_folder(p, {}), "images': no images (looked for .png, .jpg, .jpeg, "
     ".webp files, recursively)"),
    ("no-usable-image", "data", lambda p: image_folder(p, {"a.png": b"GIF89a", "b.jpg": b""}),
     "none of its 2 image files is usable (2 not an image Pillow can decode)"),
    ("class-subfolders-required", "data", lambda p: image_folder(p, {"a.png": png(0)}, folder_labels="subfolders"),
     "data.folder_labels = subfolders needs one subfolder per class (at least two) holding every image; 'a.png' "
     "is not in a subfolder"),
    ("image-folder-without-size", "data", lambda p: {"data": {"dataset": "image_folder", "local_dir": "x",
                                                              "image_size": None}},
     "data.dataset = image_folder needs data.image_size"),
    ("fewer-images-than-clusters", "data", lambda p: image_folder(p, {f"{i}.png": png(i) for i in range(5)}),
     "pseudolabel.n_clusters = 10 exceeds the 5 train images of"),
    ("fewer-images-than-clusters-later", "pseudolabel", prepared_folder_of_five,
     "pseudolabel.n_clusters = 10 exceeds the 5 train images of"),
    ("corrupt-checkpoint", "diffusion",
     lambda p: (p / "results/pretrain/backbone.pt").write_bytes(b"\x00garbage") and {},
     "results/pretrain/backbone.pt: corrupt or unreadable checkpoint"),
    ("mismatched-checkpoint", "diffusion", lambda p: corrupt_head_dim(p) or {},
     "results/pseudolabel/cluster_head.pt: cluster head expects 7-d features, the backbone gives"),
    ("nan-loss", "pretrain", {"pretrain": {"optimizer": {"name": "sgd", "lr": 1.0e30, "momentum": 0.0, "weight_decay": 0.0},
                                           "epochs": 3}},
     "non-finite loss (nan) in stage pretrain at epoch 1, step 2; lower pretrain.optimizer.lr"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_stops_with_one_line_and_changes_nothing(project, case):
    _, stage, setup, expected = case
    overrides = setup(project) if callable(setup) else setup
    if overrides:
        set_params(project, overrides)
    before = snapshot(project)
    result = invoke(stage)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{stage}: error: ")
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert snapshot(project) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_gpu(project):
    set_params(project, {"base": {"device": "cuda"}})
    before = snapshot(project)
    result = invoke("pseudolabel")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "pseudolabel: error: base.device = 'cuda' but no CUDA device is available (allowed: auto, cpu)"
    )
    assert snapshot(project) == before


def test_round_not_in_params(project):
    result = invoke("round", "r9")
    assert result.exit_code == 2
    assert result.stderr.strip() == "round@r9: error: round 'r9' is not in gcc.rounds (allowed: r1, r2)"
