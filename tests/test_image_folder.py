"""`data.dataset: image_folder`: the reader, its bad inputs, the label-free outputs, and the
tiny pipeline on a folder of PNGs against the same images read by a built-in reader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, TINY_OVERRIDES, invoke, run_stages_in_process, set_params
from formats import write_idx
from gccluster.assignments import read_assignments
from gccluster.config import DataConfig, validate_params
from gccluster.data.folder import folder_labels, read_image_folder, scan_image_folder, split_indices, square_resize
from gccluster.data.prepare import _resize, prepare_dataset
from gccluster.errors import UserError
from gccluster.metrics import cluster_diagnostics, silhouette
from gccluster.presets import parse_override, preset_params
from gccluster.scratch_project import copy_pipeline
from gccluster.selection import kmeans_k_scan

STAGES = ("data", "pretrain", "pseudolabel", "diffusion", "diffusion_samples", "round@r1", "round@r2", "evaluate",
          "figures", "baseline@dccs", "baseline@drc", "baseline@gatcluster", "baseline@precise", "report")
METHODS = ("cluster_head", "gcc", "dccs", "drc", "gatcluster", "precise")


def folder_config(root: Path, **overrides) -> DataConfig:
    return DataConfig(**{"dataset": "image_folder", "local_dir": str(root), "image_size": 16, "channels": 1,
                         **overrides})


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# ------------------------------------------------------------------------------ the reader


def test_scan_is_recursive_sorted_and_reads_image_extensions_only(tmp_path):
    for name in ("b/z.PNG", "a/deep/er/x.jpeg", "a/y.webp", "c.jpg", "notes.txt", "a/model.pt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert scan_image_folder(tmp_path).files == ["a/deep/er/x.jpeg", "a/y.webp", "b/z.PNG", "c.jpg"]


def test_square_image_equals_the_builtin_resize_and_other_shapes_are_centre_cropped():
    rng = np.random.default_rng(0)
    square = rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)
    # The built-in readers resize whole splits with prepare._resize: one image alone is the same.
    np.testing.assert_array_equal(square_resize(square, 16), _resize(square[None], 16)[0])
    np.testing.assert_array_equal(square_resize(square, 28), square)
    # 16 x 48, thirds of 0 / 128 / 255: the centre square is the middle third.
    wide = np.concatenate([np.full((16, 16, 1), v, np.uint8) for v in (0, 128, 255)], axis=1)
    np.testing.assert_array_equal(square_resize(wide, 16), np.full((16, 16, 1), 128, np.uint8))
    np.testing.assert_array_equal(square_resize(wide, 8), np.full((8, 8, 1), 128, np.uint8))
    # An extreme aspect ratio costs no more memory than its centre square.
    assert square_resize(np.zeros((2, 10**6, 3), np.uint8), 4).shape == (4, 4, 3)


def test_every_image_is_converted_to_the_requested_channels(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    save_png(tmp_path / "rgb.png", rgb)
    rgba = np.concatenate([rgb, np.full((8, 8, 1), 51, np.uint8)], axis=2)  # alpha 0.2
    save_png(tmp_path / "rgba.png", rgba)
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / "deep.png")  # 16-bit grey
    Image.fromarray(np.full((8, 8), 90, np.uint8)).convert("P").save(tmp_path / "palette.png")
    grey = read_image_folder(tmp_path, 8, 1, 10**8, "auto")
    assert grey.files == ["deep.png", "palette.png", "rgb.png", "rgba.png"]
    luma = int(Image.fromarray(rgb).convert("L").getpixel((0, 0)))  # Pillow's ITU-R 601 weights
    assert [int(im[0, 0, 0]) for im in grey.images[:3]] == [40000 >> 8, 90, luma]
    colour = read_image_folder(tmp_path, 8, 3, 10**8, "auto")
    assert colour.images.shape == (4, 8, 8, 3)
    assert colour.images[2, 0, 0].tolist() == [200, 0, 0]
    # 20 % red over white: 0.2 * (200, 0, 0) + 0.8 * 255 per channel.
    np.testing.assert_allclose(colour.images[3, 0, 0], [0.2 * 200 + 0.8 * 255, 0.8 * 255, 0.8 * 255], atol=1)
    assert colour.images[0, 0, 0].tolist() == [156, 156, 156]


def test_exif_orientation_is_applied(tmp_path):
    # 16 wide x 8 high, left half black; EXIF orientation 6: shown rotated 90 degrees clockwise,
    # so upright the black half is on top (its centre square: top rows black, bottom white).
    array = np.full((8, 16), 255, np.uint8)
    array[:, :8] = 0
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(array).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    image = read_image_folder(tmp_path, 8, 1, 10**8, "auto").images[0, ..., 0]
    assert image[:3].max() < 60 and image[-3:].min() > 195


def test_symbolic_links_loops_duplicates_and_special_files(tmp_path):
    root = tmp_path / "images"
    for name in ("b/1.png", "b/2.png", "c/3.png"):
        save_png(root / name, np.zeros((8, 8), np.uint8))
    os.symlink(root / "b", root / "a_link")  # a second path to b's images: read once, as b's
    os.symlink(root, root / "c" / "up")  # a loop
    os.mkfifo(root / "c" / "pipe.png")  # not a regular file: would block a reader
    os.symlink(root / "missing.png", root / "c" / "broken.png")
    scan = scan_image_folder(root)
    assert scan.files == ["b/1.png", "b/2.png", "c/3.png"]
    assert scan.skipped == {"symlink_loop": ["c/up/"], "unreadable": ["c/broken.png", "c/pipe.png"],
                            "duplicate": ["a_link/1.png", "a_link/2.png"]}
    labels, names = folder_labels(scan.files, "auto")
    assert names == ["b", "c"] and labels.tolist() == [0, 0, 1]


def test_images_above_max_pixels_are_skipped(tmp_path):
    save_png(tmp_path / "small.png", np.zeros((8, 8), np.uint8))
    save_png(tmp_path / "big.png", np.zeros((8, 20), np.uint8))
    out = read_image_folder(tmp_path, 8, 1, 100, "auto")
    assert out.files == ["small.png"] and out.skipped == {"too_large": ["big.png"]}


def test_labels_from_class_subfolders_and_the_three_modes():
    files = ["cat/1.png", "cat/2.png", "dog/a/3.png"]
    labels, names = folder_labels(files, "auto")
    assert labels.tolist() == [0, 0, 1] and names == ["cat", "dog"]
    assert folder_labels(files, "none") == (None, [])
    assert folder_labels(["cat/1.png", "2.png"], "auto") == (None, [])  # an image at the root: unlabelled
    assert folder_labels(["cat/1.png", "cat/2.png"], "auto") == (None, [])  # one subfolder is no classes
    with pytest.raises(UserError, match="'2.png' is not in a subfolder"):
        folder_labels(["cat/1.png", "2.png"], "subfolders")


def test_split_is_stratified_with_labels_seeded_and_sorted():
    labels = np.repeat([0, 1], 10)
    train, test = split_indices(20, labels, 0.2, 0, "train")
    assert len(test) == 4 and np.bincount(labels[test]).tolist() == [2, 2]
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert sorted([*train, *test]) == list(range(20))
    again, _ = split_indices(20, None, 0.2, 0, "train")
    other, _ = split_indices(20, None, 0.2, 1, "train")
    assert len(again) == 16 and not np.array_equal(again, other)
    both = split_indices(5, None, 0.2, 0, "train+test")
    assert both[0].tolist() == both[1].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(UserError, match="class 1 has 1 image"):
        split_indices(11, np.array([0] * 10 + [1]), 0.2, 0, "train")


def test_image_folder_params_are_validated():
    with pytest.raises(UserError, match="needs data.local_dir"):
        validate_params({"data": {"dataset": "image_folder"}})
    with pytest.raises(UserError, match="needs data.image_size"):
        validate_params({"data": {"dataset": "image_folder", "local_dir": "x", "image_size": None}})
    with pytest.raises(UserError, match="data.channels = 1 is for data.dataset = image_folder"):
        validate_params({"data": {"channels": 1}})
    with pytest.raises(UserError, match="policy = simclr needs RGB"):
        validate_params({"data": {"dataset": "image_folder", "local_dir": "x", "channels": 1},
                         "pretrain": {"augment": {"policy": "simclr"}}})
    params = validate_params({"data": {"dataset": "image_folder", "local_dir": "x", "image_size": 32},
                              "pseudolabel": {"n_clusters": 7}, "baselines": {"drc": {"n_clusters": 3}}})
    assert params.data.resolved_channels() == 3  # RGB unless told
    assert params.cluster_counts() == {"pseudolabel.n_clusters": 7, "baselines.dccs.n_clusters": 7,
                                       "baselines.drc.n_clusters": 3, "baselines.gatcluster.n_clusters": 7,
                                       "baselines.precise.n_clusters": 7}
    with pytest.raises(UserError, match="baselines.drc.n_clusters = 2000 exceeds the 1437 train images of digits"):
        validate_params({"baselines": {"drc": {"n_clusters": 2000}}})


def test_image_folder_preset_with_set_overrides():
    params = preset_params("image_folder", ["data.local_dir=my images", "pseudolabel.n_clusters=4"])
    assert params.data.local_dir == "my images" and params.pseudolabel.n_clusters == 4
    assert params.data.protocol == "train+test" and params.data.channels == 3
    assert parse_override("a.b=[1, 2]") == {"a": {"b": [1, 2]}}
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_override("data.local_dir")
    with pytest.raises(UserError, match="unknown key data.folder"):
        preset_params("image_folder", ["data.folder=x"])


# ---------------------------------------------------------------------- label-free numbers


def test_silhouette_against_the_formula_by_hand():
    points = np.array([[0.0], [1.0], [5.0], [7.0]])
    clusters = np.array([0, 0, 1, 1])
    # a(i): mean distance within the own cluster; b(i): to the other cluster; s = (b - a) / max(a, b).
    by_hand = [(6 - 1) / 6, (5 - 1) / 5, (4.5 - 2) / 4.5, (6.5 - 2) / 6.5]
    assert silhouette(points, clusters) == pytest.approx(np.mean(by_hand), abs=1e-4)
    assert silhouette(points, np.zeros(4, int)) is None  # one cluster: undefined
    diagnostics = cluster_diagnostics(np.array([0, 0, 2, 2]), 3, points)
    assert diagnostics["sizes"] == [2, 0, 2]
    assert diagnostics["balance"] == pytest.approx(np.log(2) / np.log(3), abs=1e-4)


def test_k_scan_finds_separated_blobs():
    rng = np.random.default_rng(0)
    directions = np.eye(8)[:4] * 10
    features = np.concatenate([d + rng.normal(size=(50, 8)) for d in directions])
    rows = kmeans_k_scan(features, [2, 3, 4, 5, 6])
    best = max(rows, key=lambda row: row["silhouette"])
    assert best["k"] == 4
    inertia = [row["inertia"] for row in rows]
    assert all(a > b for a, b in zip(inertia, inertia[1:]))


# ------------------------------------------------------------------------------- bad input


def test_bad_files_are_skipped_listed_and_the_rest_is_prepared(tmp_path, monkeypatch):
    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(4):
        save_png(images / f"ok{i}.png", rng.integers(0, 256, (20, 20), dtype=np.uint8))
    good = (images / "ok0.png").read_bytes()
    (images / "truncated.png").write_bytes(good[: len(good) // 2])
    (images / "notes.jpg").write_text("not an image at all")
    (images / "sub").mkdir()
    os.symlink("..", images / "sub" / "loop")  # sub/loop -> images: a loop
    # 20000 x 20000 (400 M pixels, 50 MB as a 1-bit image in memory, a few kB on disk).
    Image.new("1", (20000, 20000)).save(images / "huge.png")
    project = copy_pipeline(ROOT, tmp_path / "project", TINY_OVERRIDES)
    monkeypatch.chdir(project)
    set_params(project, {"data": {"dataset": "image_folder", "local_dir": str(images), "image_size": 16,
                                  "channels": 1, "protocol": "train+test"}, "pseudolabel": {"n_clusters": 2}})
    result = invoke("data")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "skipped 4 file(s)" in out and "label-free" in out
    assert "1 corrupt or truncated: truncated.png" in out
    assert "1 not an image Pillow can decode: notes.jpg" in out
    assert "1 more pixels than data.max_image_pixels: huge.png" in out
    assert "1 a symbolic link back to a folder it is in (a loop): sub/loop/" in out
    meta = json.loads((project / "data/prepared/meta.json").read_text())
    assert meta["skipped"] == {"symlink_loop": ["sub/loop/"], "too_large": ["huge.png"],
                               "not_an_image": ["notes.jpg"], "corrupt": ["truncated.png"]}
    assert meta["n_train"] == 4 and meta["labeled"] is False


def test_pick_k_prints_inertia_and_silhouette_for_each_k(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from gccluster.cli import app

    project = copy_pipeline(ROOT, tmp_path / "project", TINY_OVERRIDES)
    run_stages_in_process(project, ("data", "pretrain"))
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["pick-k", "--min", "2", "--max", "4"], env={"CI": "true"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "K-means on 1437 train images, pseudolabel.kmeans_space = projection:"
    rows = [line.split() for line in lines[2:5]]
    assert [row[0] for row in rows] == ["2", "3", "4"]
    inertia = [float(row[1]) for row in rows]
    assert inertia[0] > inertia[1] > inertia[2] and all(-1 <= float(row[2]) <= 1 for row in rows)
    bad = CliRunner().invoke(app, ["pick-k", "--min", "5", "--max", "3"])
    assert bad.exit_code == 2 and "needs 2 <= min <= max" in bad.output


# ------------------------------------------------------------------- the pipeline end to end


@pytest.fixture(scope="module")
def digits_by_class():
    """300 of scikit-learn's digits (30 per class) at 28 x 28, in class order."""
    import torch
    from sklearn.datasets import load_digits
    from torchvision.transforms.v2 import functional as TF

    digits = load_digits()
    chosen = np.concatenate([np.flatnonzero(digits.target == k)[:30] for k in range(10)])
    small = np.round(digits.images[chosen] * (255.0 / 16.0)).astype(np.uint8)
    images = TF.resize(torch.from_numpy(small)[:, None], [28, 28], antialias=True)[:, 0].numpy()
    return images, digits.target[chosen].astype(np.int64)


# Every default that depends on the dataset's name set as fashion_mnist's (the built-in
# reader compared with), so that the two runs differ in nothing but the reader.
SAME_DEFAULTS = {"pretrain": {"augment": {"policy": "grayscale"}}}


def run_tiny(tmp_path: Path, name: str, data: dict) -> Path:
    """Every stage of the tiny pipeline, in dvc.yaml's order, in this process."""
    project = copy_pipeline(ROOT, tmp_path / name, TINY_OVERRIDES)
    set_params(project, {"data": {"image_size": 16, "protocol": "train+test", **data}, **SAME_DEFAULTS})
    old = Path.cwd()
    os.chdir(project)
    try:
        for stage in STAGES:
            result = invoke(*stage.split("@"))
            assert result.exit_code == 0, f"{stage}: {result.output}"
    finally:
        os.chdir(old)
    return project


def all_metrics(project: Path) -> dict:
    found = {"gcc": json.loads((project / "results/metrics.json").read_text())}
    for name in METHODS[2:]:
        found[name] = json.loads((project / f"results/baselines/{name}/metrics.json").read_text())
        found[name].pop("training")
    return found


@pytest.mark.e2e
def test_pipeline_on_a_png_folder_equals_the_builtin_reader_and_runs_label_free(tmp_path, digits_by_class):
    images, labels = digits_by_class
    # The built-in reader: Fashion-MNIST's IDX files (classes 0-8 in train, 9 in t10k; under
    # train+test the two are one set, in this order).
    idx = tmp_path / "idx"
    idx.mkdir()
    last = labels == 9
    for prefix, keep in (("train", ~last), ("t10k", last)):
        write_idx(idx / f"{prefix}-images-idx3-ubyte", images[keep], compress=False)
        write_idx(idx / f"{prefix}-labels-idx1-ubyte", labels[keep], compress=False)
    # The same images as PNGs, one subfolder per class: sorted, the same order.
    labelled, flat = tmp_path / "labelled", tmp_path / "flat"
    for i, (image, label) in enumerate(zip(images, labels)):
        save_png(labelled / str(label) / f"{i:04d}.png", image)
        save_png(flat / f"{i:04d}.png", image)

    builtin = prepare_dataset(DataConfig(dataset="fashion_mnist", local_dir=str(idx), image_size=16,
                                         protocol="train+test"), tmp_path)
    folder = prepare_dataset(folder_config(labelled, protocol="train+test"), tmp_path)
    np.testing.assert_array_equal(folder.train.images, builtin.train.images)  # nothing added, nothing lost
    np.testing.assert_array_equal(folder.train.labels, builtin.train.labels)

    reference = run_tiny(tmp_path, "builtin", {"dataset": "fashion_mnist", "local_dir": str(idx)})
    from_folder = run_tiny(tmp_path, "folder", {"dataset": "image_folder", "local_dir": str(labelled),
                                                "channels": 1})
    assert all_metrics(from_folder) == all_metrics(reference)
    scores = all_metrics(from_folder)["gcc"]["final"]
    assert {"acc", "nmi", "ari", "balance", "silhouette", "sizes"} <= set(scores)
    rows = read_assignments(from_folder / "results/assignments/gcc.csv")
    assert [row["file"] for row in rows] == [f"{label}/{i:04d}.png" for i, label in enumerate(labels)]

    label_free = run_tiny(tmp_path, "label_free", {"dataset": "image_folder", "local_dir": str(flat), "channels": 1})
    metrics = all_metrics(label_free)
    for name, found in metrics.items():
        entry = found["final"] if name == "gcc" else found
        assert "acc" not in entry and {"balance", "silhouette", "sizes"} <= set(entry), name
        assert sum(entry["sizes"]) == len(images)
    for method in METHODS:
        rows = read_assignments(label_free / f"results/assignments/{method}.csv")
        assert [row["file"] for row in rows] == sorted(p.name for p in flat.iterdir()), method
        # Training never reads labels: the same images without class subfolders, the same clusters.
        labelled_rows = read_assignments(from_folder / f"results/assignments/{method}.csv")
        assert [row["cluster"] for row in rows] == [row["cluster"] for row in labelled_rows], method
        assert {row["split"] for row in rows} == {"train+test"}
        assert all(0 <= int(row["cluster"]) < 10 and 0.0 < float(row["confidence"]) <= 1.0 for row in rows)
    assert (label_free / "results/figures/clusters.png").read_bytes()[:4] == b"\x89PNG"
    report = (label_free / "results/report.md").read_text()
    assert "| **GCC (result)** | – | – | – |" in report and "no ACC, NMI, ARI" in report
